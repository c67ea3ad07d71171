insert into prices by name
select
    model,
    effective_from,
    input,
    output,
    cache_write_5m,
    cache_write_1h,
    cache_read,
    batch_discount,
    source
from read_csv(
    $path,
    header = true,
    columns = {
        'model': 'varchar',
        'effective_from': 'date',
        'input': 'double',
        'output': 'double',
        'cache_write_5m': 'double',
        'cache_write_1h': 'double',
        'cache_read': 'double',
        'batch_discount': 'double',
        'source': 'varchar'
    }
)
