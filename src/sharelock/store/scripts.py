"""The store's Lua scripts: what must happen together, in one round trip, atomically (on one
server and on Redis Cluster alike, where every key of one script must carry one slot tag).
Each is registered once per client and run by EVALSHA (`SealedStore`)."""

# Write ARGV[2] to KEYS[1] only if it still holds exactly ARGV[1] (the sealed bytes read
# before), keeping its expiry; and then, with it, each further key: KEYS[i] (i >= 2) is deleted
# if ARGV[2i-1] is empty, else written with that value expiring at ARGV[2i] (ms). Sealed
# values are never empty. 1: written; 0: KEYS[1] changed or gone meanwhile, nothing written.
COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do
    if ARGV[2 * i - 1] == '' then
        redis.call('DEL', KEYS[i])
    else
        redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PXAT', ARGV[2 * i])
    end
end
redis.call('SET', KEYS[1], ARGV[2], 'XX', 'KEEPTTL')
return 1
"""
# Delete KEYS[1..n-1] and remove ARGV[1] from the sorted set KEYS[n].
DELETE_WITH_INDEX = """
for i = 1, #KEYS - 1 do redis.call('DEL', KEYS[i]) end
return redis.call('ZREM', KEYS[#KEYS], ARGV[1])
"""
# If KEYS[1] exists: delete KEYS[1..n-2], write ARGV[1] to KEYS[n-1] expiring at ARGV[2] (ms),
# and score ARGV[3] in the sorted set KEYS[n] at ARGV[4]. 1: done; 0: KEYS[1] was gone, nothing
# changed.
HAND_OVER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #KEYS - 2 do redis.call('DEL', KEYS[i]) end
redis.call('SET', KEYS[#KEYS - 1], ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', KEYS[#KEYS], ARGV[4], ARGV[3])
return 1
"""
# Write each KEYS[i] with ARGV[2i-1] expiring at ARGV[2i] (ms): records that exist together.
PUT_ALL = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PXAT', ARGV[2 * i]) end
return #KEYS
"""
# Remove and return up to ARGV[2] members of KEYS[1] scored at most ARGV[1].
POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""
# Write ARGV[1] to KEYS[1] expiring at ARGV[2] (ms), and score ARGV[3] in the sorted set KEYS[2]
# at ARGV[4]: a record never exists without its expiry-index entry.
PUT_INDEXED = """
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 1
"""
