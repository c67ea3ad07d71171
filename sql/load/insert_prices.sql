insert into prices by name
select
    model,
    effective_from,
    prompt_tokens_over,
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
        'prompt_tokens_over': 'bigint',
        'input': 'decimal(12, 6)',
        'output': 'decimal(12, 6)',
        'cache_write_5m': 'decimal(12, 6)',
        'cache_write_1h': 'decimal(12, 6)',
        'cache_read': 'decimal(12, 6)',
        'batch_discount': 'decimal(4, 3)',
        'source': 'varchar'
    }
)
