<?php

declare(strict_types=1);

namespace Rr\Kv;

/**
 * A client of one storage of rr's (or RoadRunner's) kv plugin, PSR-16 in
 * spirit without depending on psr/simple-cache:
 *
 *     $cache = new Client(Rpc::connect('tcp://127.0.0.1:6001'), 'local');
 *     $cache->set('user:1', ['name' => 'Ann'], 60);   // TTL seconds or DateInterval
 *     $cache->get('user:1');                          // ['name' => 'Ann']
 *
 * Values are stored with PHP's serialize() (the official client's default
 * serializer, so both clients read each other's values); expiries travel
 * as absolute RFC 3339 times, in UTC.
 */
final class Client
{
    private readonly \DateTimeZone $utc;

    /**
     * @param \Closure():\DateTimeImmutable|null $now the clock (tests)
     */
    public function __construct(
        private readonly Rpc $rpc,
        private readonly string $storage,
        private readonly ?\Closure $now = null,
    ) {
        $this->utc = new \DateTimeZone('UTC');
    }

    public function getName(): string
    {
        return $this->storage;
    }

    public function has(string $key): bool
    {
        foreach ($this->call('kv.Has', [['key' => $key]]) as $item) {
            if ($item['key'] === $key) {
                return true;
            }
        }

        return false;
    }

    public function get(string $key, mixed $default = null): mixed
    {
        return $this->getMultiple([$key], $default)[$key];
    }

    /**
     * @param iterable<string> $keys
     * @return array<string, mixed> every asked key, `$default` for missing ones
     */
    public function getMultiple(iterable $keys, mixed $default = null): array
    {
        $keys = self::list($keys);
        $found = [];
        foreach ($this->call('kv.MGet', array_map(static fn (string $k) => ['key' => $k], $keys)) as $item) {
            $found[$item['key']] = $item['value'];
        }
        $out = [];
        foreach ($keys as $key) {
            $out[$key] = array_key_exists($key, $found) ? self::unserialize($found[$key]) : $default;
        }

        return $out;
    }

    public function set(string $key, mixed $value, null|int|\DateInterval $ttl = null): bool
    {
        return $this->setMultiple([$key => $value], $ttl);
    }

    /**
     * @param iterable<string, mixed> $values
     */
    public function setMultiple(iterable $values, null|int|\DateInterval $ttl = null): bool
    {
        $timeout = $this->timeout($ttl);
        $items = [];
        foreach ($values as $key => $value) {
            $items[] = ['key' => (string) $key, 'value' => serialize($value), 'timeout' => $timeout];
        }
        $this->call('kv.Set', $items);

        return true;
    }

    /**
     * Changes the expiry of existing keys (kv.MExpire); missing keys are left alone.
     *
     * @param iterable<string> $keys
     */
    public function expire(iterable $keys, int|\DateInterval $ttl): bool
    {
        $timeout = $this->timeout($ttl);
        $this->call('kv.MExpire', array_map(static fn (string $k) => ['key' => $k, 'timeout' => $timeout], self::list($keys)));

        return true;
    }

    public function delete(string $key): bool
    {
        return $this->deleteMultiple([$key]);
    }

    /**
     * @param iterable<string> $keys
     */
    public function deleteMultiple(iterable $keys): bool
    {
        $this->call('kv.Delete', array_map(static fn (string $k) => ['key' => $k], self::list($keys)));

        return true;
    }

    public function clear(): bool
    {
        $this->call('kv.Clear', []);

        return true;
    }

    /**
     * When the key expires; null when it does not exist or never expires.
     *
     * @throws NotImplementedException the driver cannot tell (memcached)
     */
    public function getTtl(string $key): ?\DateTimeImmutable
    {
        return $this->getMultipleTtl([$key])[$key];
    }

    /**
     * @param iterable<string> $keys
     * @return array<string, ?\DateTimeImmutable>
     */
    public function getMultipleTtl(iterable $keys): array
    {
        $keys = self::list($keys);
        try {
            $items = $this->call('kv.TTL', array_map(static fn (string $k) => ['key' => $k], $keys));
        } catch (KvException $e) {
            if (str_contains($e->getMessage(), '_plugin_ttl')) {
                throw new NotImplementedException(sprintf('Storage "%s" does not support kv.TTL', $this->storage), 0, $e);
            }
            throw $e;
        }
        $found = [];
        foreach ($items as $item) {
            if ($item['timeout'] !== '') {
                $at = \DateTimeImmutable::createFromFormat(\DateTimeInterface::RFC3339, $item['timeout'], $this->utc);
                if ($at === false) {
                    throw new KvException("kv: bad timeout in reply: {$item['timeout']}");
                }
                $found[$item['key']] = $at;
            }
        }
        $out = [];
        foreach ($keys as $key) {
            $out[$key] = $found[$key] ?? null;
        }

        return $out;
    }

    /**
     * @param list<array{key: string, value?: string, timeout?: string}> $items
     * @return list<array{key: string, value: string, timeout: string}>
     */
    private function call(string $method, array $items): array
    {
        try {
            $reply = $this->rpc->call($method, Proto::encodeRequest($this->storage, $items));
        } catch (KvException $e) {
            if (str_contains($e->getMessage(), 'no such storage')) {
                throw new StorageException(sprintf('Storage "%s" has not been defined: %s', $this->storage, $e->getMessage()), 0, $e);
            }
            throw $e;
        }

        return Proto::decodeResponse($reply);
    }

    private function timeout(null|int|\DateInterval $ttl): string
    {
        if ($ttl === null) {
            return '';
        }
        $now = $this->now !== null ? ($this->now)() : new \DateTimeImmutable('now', $this->utc);
        $at = $ttl instanceof \DateInterval ? $now->add($ttl) : $now->setTimestamp($now->getTimestamp() + $ttl);

        return $at->setTimezone($this->utc)->format(\DateTimeInterface::RFC3339);
    }

    /**
     * @param iterable<string> $keys
     * @return list<string>
     */
    private static function list(iterable $keys): array
    {
        $out = [];
        foreach ($keys as $key) {
            if (!is_string($key)) {
                throw new \InvalidArgumentException('Cache key must be a string, but ' . get_debug_type($key) . ' passed');
            }
            $out[] = $key;
        }

        return $out;
    }

    private static function unserialize(string $value): mixed
    {
        if ($value === serialize(false)) {
            return false;
        }
        $result = @unserialize($value, ['allowed_classes' => true]);
        if ($result === false) {
            throw new KvException('kv: the stored value is not PHP-serialized');
        }

        return $result;
    }
}
