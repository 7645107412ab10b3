<?php

/**
 * Drives rr's kv plugin through the SDK's Rr\Kv\Client (kv_e2e.rs runs it):
 *
 *     php tests/php/kv_client.php suite   tcp://127.0.0.1:6001 mem redis mc bolt
 *     php tests/php/kv_client.php persist tcp://127.0.0.1:6001 bolt
 *
 * `suite` exercises every kv RPC method on each storage (a storage named
 * `mc*` is memcached: TTL queries must be refused), then the missing-storage
 * errors, and leaves the key `persist` => 'kept' in each storage. `persist`
 * checks that key. One line per check, then "DONE passed=N failed=M".
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Kv\Client;
use Rr\Kv\KvException;
use Rr\Kv\NotImplementedException;
use Rr\Kv\Rpc;
use Rr\Kv\StorageException;

$passed = 0;
$failed = 0;

function check(string $name, callable $test): void
{
    global $passed, $failed;
    try {
        $test();
        $passed++;
        echo "ok   $name\n";
    } catch (Throwable $e) {
        $failed++;
        echo "FAIL $name: " . get_class($e) . ': ' . str_replace("\n", ' ', $e->getMessage()) . "\n";
    }
}

function same(mixed $expected, mixed $actual, string $what): void
{
    if ($expected !== $actual) {
        throw new RuntimeException("$what: expected " . var_export($expected, true) . ', got ' . var_export($actual, true));
    }
}

/** Polls $condition every 50 ms until it holds or $seconds pass. */
function eventually(callable $condition, float $seconds, string $what): void
{
    $deadline = microtime(true) + $seconds;
    while (!$condition()) {
        if (microtime(true) > $deadline) {
            throw new RuntimeException("$what did not happen within {$seconds}s");
        }
        usleep(50_000);
    }
}

[$_, $mode, $address] = $argv;
$storages = array_slice($argv, 3);
$rpc = Rpc::connect($address);

if ($mode === 'persist') {
    foreach ($storages as $name) {
        check("$name: persist survives restart", function () use ($rpc, $name) {
            $kv = new Client($rpc, $name);
            same('kept', $kv->get('persist'), 'persist');
            $ttl = $kv->getTtl('persist-ttl');
            if ($ttl === null || abs($ttl->getTimestamp() - (time() + 3600)) > 30) {
                throw new RuntimeException('persist-ttl lost its expiry: ' . var_export($ttl, true));
            }
        });
    }
    echo "DONE passed=$passed failed=$failed\n";
    exit($failed === 0 ? 0 : 1);
}

foreach ($storages as $name) {
    $kv = new Client($rpc, $name);
    $memcached = str_starts_with($name, 'mc');

    check("$name: clear, set, get, has", function () use ($kv) {
        same(true, $kv->clear(), 'clear');
        same(true, $kv->set('a', ['x' => 1, 'y' => 'two']), 'set');
        same(['x' => 1, 'y' => 'two'], $kv->get('a'), 'get a');
        same(true, $kv->has('a'), 'has a');
        same(false, $kv->has('nope'), 'has nope');
        same('dflt', $kv->get('nope', 'dflt'), 'get nope');
    });

    check("$name: setMultiple, getMultiple, odd values", function () use ($kv) {
        $kv->setMultiple(['b' => 'B', 'c' => 3, 'f' => false, 'bin' => "\0\xff\r\n"]);
        same(['a' => ['x' => 1, 'y' => 'two'], 'b' => 'B', 'c' => 3, 'nope' => 'd'], $kv->getMultiple(['a', 'b', 'c', 'nope'], 'd'), 'getMultiple');
        same(false, $kv->get('f', 'dflt'), 'false value');
        same("\0\xff\r\n", $kv->get('bin'), 'binary value');
    });

    check("$name: delete, deleteMultiple", function () use ($kv) {
        $kv->delete('c');
        same(false, $kv->has('c'), 'c after delete');
        $kv->deleteMultiple(['f', 'bin', 'never-there']);
        same(['f' => null, 'bin' => null], $kv->getMultiple(['f', 'bin']), 'after deleteMultiple');
    });

    check("$name: TTL", function () use ($kv, $memcached) {
        $kv->set('long', 'v', 3600);
        $kv->set('interval', 'v', new DateInterval('PT2H'));
        if ($memcached) {
            try {
                $kv->getTtl('long');
                throw new RuntimeException('memcached answered a TTL');
            } catch (NotImplementedException $e) {
                if (!str_contains($e->getPrevious()?->getMessage() ?? '', 'memcached_plugin_ttl')) {
                    throw $e;
                }
            }

            return;
        }
        $ttl = $kv->getTtl('long');
        if ($ttl === null || abs($ttl->getTimestamp() - (time() + 3600)) > 5) {
            throw new RuntimeException('long TTL: ' . var_export($ttl, true));
        }
        $ttl = $kv->getTtl('interval');
        if ($ttl === null || abs($ttl->getTimestamp() - (time() + 7200)) > 5) {
            throw new RuntimeException('interval TTL: ' . var_export($ttl, true));
        }
        same(null, $kv->getTtl('a'), 'TTL of a key without expiry');
        same(null, $kv->getTtl('nope'), 'TTL of a missing key');
    });

    check("$name: a key with a 1 s TTL expires", function () use ($kv) {
        $kv->set('short', 'v', 1);
        eventually(fn () => !$kv->has('short'), 10, 'short expiring');
        same(null, $kv->get('short'), 'get after expiry');
    });

    check("$name: MExpire", function () use ($kv, $memcached) {
        $kv->set('b', 'B');
        $kv->expire(['b', 'ghost'], 1);
        if (!$memcached) {
            $ttl = $kv->getTtl('b');
            if ($ttl === null || $ttl->getTimestamp() > time() + 2) {
                throw new RuntimeException('b TTL after expire: ' . var_export($ttl, true));
            }
        }
        eventually(fn () => !$kv->has('b'), 10, 'b expiring');
        same(false, $kv->has('ghost'), 'MExpire created a missing key');
    });

    check("$name: clear empties the storage", function () use ($kv) {
        $kv->clear();
        same(['a' => null, 'long' => null], $kv->getMultiple(['a', 'long']), 'after clear');
    });

    check("$name: leave a key for the restart check", function () use ($kv) {
        $kv->set('persist', 'kept');
        $kv->set('persist-ttl', 'kept', 3600);
    });
}

check('missing storage', function () use ($rpc) {
    try {
        (new Client($rpc, 'missing'))->has('x');
        throw new RuntimeException('no error');
    } catch (StorageException $e) {
        if (!str_contains($e->getMessage(), 'no such storage: missing')) {
            throw $e;
        }
    }
});

check('empty storage name', function () use ($rpc) {
    try {
        (new Client($rpc, ''))->has('x');
        throw new RuntimeException('no error');
    } catch (KvException $e) {
        if (!str_contains($e->getMessage(), 'no storage provided')) {
            throw $e;
        }
    }
});

check('empty key', function () use ($rpc, $storages) {
    try {
        (new Client($rpc, $storages[0]))->has(' ');
        throw new RuntimeException('no error');
    } catch (KvException $e) {
        if (!str_contains($e->getMessage(), "key can't be empty string")) {
            throw $e;
        }
    }
});

echo "DONE passed=$passed failed=$failed\n";
exit($failed === 0 ? 0 : 1);
