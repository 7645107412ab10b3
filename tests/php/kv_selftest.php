<?php

/**
 * Self-test of the SDK's kv protobuf codec (sdk/php/src/Kv/Proto.php), no
 * server needed:
 *
 *     php tests/php/kv_selftest.php
 *
 * The expected bytes are the kv.v1 encoding written out by hand (the same
 * bytes plugins/kv/src/proto.rs pins). Ends with "DONE passed=N failed=M".
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Kv\KvException;
use Rr\Kv\Proto;

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
        echo "FAIL $name: " . $e->getMessage() . "\n";
    }
}

function same(mixed $expected, mixed $actual): void
{
    if ($expected !== $actual) {
        throw new RuntimeException('expected ' . var_export($expected, true) . ', got ' . var_export($actual, true));
    }
}

check('request encoding', function () {
    same(
        "\x0a\x03mem\x12\x0a\x0a\x01a\x12\x02xy\x1a\x01T",
        Proto::encodeRequest('mem', [['key' => 'a', 'value' => 'xy', 'timeout' => 'T']]),
    );
    // Empty fields are left out, but an item is always written.
    same("\x0a\x01s\x12\x00", Proto::encodeRequest('s', [['key' => '']]));
    same('', Proto::encodeRequest('', []));
});

check('long values use multi-byte lengths', function () {
    $value = str_repeat('v', 300);
    $bytes = Proto::encodeRequest('s', [['key' => 'k', 'value' => $value]]);
    same("\x0a\x01s\x12\xb2\x02\x0a\x01k\x12\xac\x02", substr($bytes, 0, 12));
});

check('response decoding skips unknown fields', function () {
    $item = "\x0a\x01k\x12\x01v\x1a\x01T" . "\x20\x96\x01" . "\x2d\x01\x02\x03\x04";
    $bytes = "\x0a" . chr(strlen($item)) . $item . "\x10\x05" . "\x0a\x03\x0a\x01z";
    same(
        [['key' => 'k', 'value' => 'v', 'timeout' => 'T'], ['key' => 'z', 'value' => '', 'timeout' => '']],
        Proto::decodeResponse($bytes),
    );
    same([], Proto::decodeResponse(''));
});

check('truncated replies are errors', function () {
    try {
        Proto::decodeResponse("\x0a\x05ab");
        throw new RuntimeException('no error');
    } catch (KvException) {
    }
});

echo "DONE passed=$passed failed=$failed\n";
exit($failed === 0 ? 0 : 1);
