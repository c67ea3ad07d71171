delete from prices
