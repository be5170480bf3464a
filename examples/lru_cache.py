def lru_get(cache, order, key, capacity, load):
    """Return the value for key, loading it on a miss and evicting the least recently used entry."""
    if key in cache:
        order.remove(key)
        order.append(key)
        return cache[key]
    value = load(key)
    cache[key] = value
    order.append(key)
    if len(order) > capacity:
        oldest = order.pop(0)
        del cache[oldest]
    return value
