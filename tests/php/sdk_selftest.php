<?php

/**
 * Self-test of the rr PHP SDK (sdk/php), no server needed:
 *
 *     php tests/php/sdk_selftest.php
 *
 * Prints one line per check and finally "N passed, M failed"; exits 1 on any failure.
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Environment;
use Rr\Goridge\Frame;
use Rr\Goridge\Relay;
use Rr\Goridge\RelayException;
use Rr\Goridge\SocketRelay;
use Rr\Goridge\StreamRelay;
use Rr\Http\HttpWorker;
use Rr\Http\Proto;
use Rr\Http\Request;
use Rr\Payload;
use Rr\Worker;

$passed = 0;
$failed = 0;

function check(string $name, callable $test): void
{
    global $passed, $failed;
    try {
        $test();
        $passed++;
        fwrite(STDOUT, "ok   $name\n");
    } catch (Throwable $e) {
        $failed++;
        fwrite(STDOUT, "FAIL $name: " . get_class($e) . ': ' . $e->getMessage() . "\n");
    }
}

function expect(bool $condition, string $message): void
{
    if (!$condition) {
        throw new RuntimeException($message);
    }
}

function same(mixed $expected, mixed $actual, string $what): void
{
    if ($expected !== $actual) {
        throw new RuntimeException(sprintf('%s: expected %s, got %s', $what, var_export($expected, true), var_export($actual, true)));
    }
}

/** @return resource */
function memory(string $bytes = '')
{
    $stream = fopen('php://memory', 'w+b');
    fwrite($stream, $bytes);
    rewind($stream);

    return $stream;
}

/** Decode every frame in $bytes. @return Frame[] */
function frames(string $bytes): array
{
    $relay = new StreamRelay(memory($bytes), memory());
    $out = [];
    while (true) {
        try {
            $out[] = $relay->waitFrame();
        } catch (RelayException $e) {
            if (str_contains($e->getMessage(), '0 of 12 bytes')) {
                return $out;
            }
            throw $e;
        }
    }
}

function expectThrows(callable $fn, string $needle): string
{
    try {
        $fn();
    } catch (Throwable $e) {
        expect(str_contains($e->getMessage(), $needle), "exception message lacks '$needle': " . $e->getMessage());

        return $e->getMessage();
    }
    throw new RuntimeException("expected an exception containing '$needle'");
}

/** A worker whose relay reads $input and writes into a memory stream returned by reference. */
function memoryWorker(string $input, &$out): Worker
{
    $out = memory();

    return new Worker(new StreamRelay(memory($input), $out), false);
}

function written($out): string
{
    rewind($out);

    return stream_get_contents($out);
}

/** Stream wrapper handing out at most 3 bytes per read, to exercise short reads. */
final class TrickleStream
{
    public static string $data = '';
    private int $pos = 0;
    /** @var resource|null */
    public $context;

    public function stream_open(string $path, string $mode, int $options, ?string &$opened): bool
    {
        $this->pos = 0;
        return true;
    }

    public function stream_read(int $count): string
    {
        $chunk = substr(self::$data, $this->pos, min(3, $count));
        $this->pos += strlen($chunk);
        return $chunk;
    }

    public function stream_eof(): bool
    {
        return $this->pos >= strlen(self::$data);
    }

    public function stream_write(string $data): int
    {
        return strlen($data);
    }

    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        return false;
    }
}

// ---------------------------------------------------------------- framing

check('encode: exact byte layout of a frame with one option', function (): void {
    $bytes = (new Frame('ctxBODY', [3], Frame::CODEC_JSON, Frame::STREAM))->encode();
    same(12 + 4 + 7, strlen($bytes), 'length');
    same(0x14, ord($bytes[0]), 'byte0 (version 1, HL 4)');
    same(0x08, ord($bytes[1]), 'flags');
    same(pack('V', 7), substr($bytes, 2, 4), 'payload length LE');
    same(pack('V', crc32(substr($bytes, 0, 6))), substr($bytes, 6, 4), 'crc LE');
    same(0x01, ord($bytes[10]), 'stream byte');
    same(0x00, ord($bytes[11]), 'reserved byte');
    same(pack('V', 3), substr($bytes, 12, 4), 'option 0');
    same('ctxBODY', substr($bytes, 16), 'payload');
});

check('encode: known vectors (computed independently with Python zlib)', function (): void {
    same('1309090000006dfc98440000' . bin2hex('{"pid":1}'), bin2hex((new Frame('{"pid":1}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode()), 'pid handshake frame');
    same('140002000000a5298c830000000000004f4b', bin2hex((new Frame('OK', [0]))->encode()), 'reply "OK" with empty context');
});

check('constants match protocol.md', function (): void {
    same([0x01, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80], [Frame::CONTROL, Frame::CODEC_RAW, Frame::CODEC_JSON, Frame::CODEC_MSGPACK, Frame::CODEC_GOB, Frame::ERROR, Frame::CODEC_PROTO], 'flags');
    same([0x01, 0x02, 0x04, 0x08], [Frame::STREAM, Frame::STOP, Frame::PING, Frame::PONG], 'stream byte');
});

check('round trip: encode -> StreamRelay::send -> php://memory -> waitFrame', function (): void {
    $cases = [
        new Frame('', [], 0),
        new Frame('', [0], 0),
        new Frame('{"a":1}hello', [7], Frame::CODEC_RAW, 0),
        new Frame(str_repeat("\x00\xff", 300000), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0xFFFFFFFF], Frame::CODEC_PROTO | Frame::ERROR, Frame::PING | Frame::STREAM),
    ];
    $out = memory();
    $relay = new StreamRelay(memory(), $out);
    foreach ($cases as $frame) {
        $relay->send($frame);
    }
    $decoded = frames(written($out));
    same(count($cases), count($decoded), 'frame count');
    foreach ($cases as $i => $frame) {
        same($frame->payload, $decoded[$i]->payload, "payload #$i");
        same($frame->options, $decoded[$i]->options, "options #$i");
        same($frame->flags, $decoded[$i]->flags, "flags #$i");
        same($frame->stream, $decoded[$i]->stream, "stream #$i");
    }
    same($cases[2]->encode(), Frame::decode($cases[2]->encode())->encode(), 'Frame::decode round trip');
});

check('short reads: a stream returning 3 bytes per read still yields whole frames', function (): void {
    stream_wrapper_register('trickle', TrickleStream::class);
    TrickleStream::$data = (new Frame('ctx' . str_repeat('x', 1000), [3], Frame::CODEC_JSON))->encode()
        . (new Frame('second', [0]))->encode();
    $relay = new StreamRelay(fopen('trickle://x', 'rb'), memory());
    $a = $relay->waitFrame();
    $b = $relay->waitFrame();
    same('ctx' . str_repeat('x', 1000), $a->payload, 'first payload');
    same([3], $a->options, 'first options');
    same('second', $b->payload, 'second payload');
});

check('CRC mismatch is detected and names expected/actual', function (): void {
    $bytes = (new Frame('hello', [0]))->encode();
    $bytes[2] = chr(ord($bytes[2]) ^ 0x01); // corrupt the payload length
    $msg = expectThrows(fn () => (new StreamRelay(memory($bytes), memory()))->waitFrame(), 'CRC mismatch');
    expect(str_contains($msg, 'expected 0x') && str_contains($msg, 'actual 0x'), "message names both CRCs: $msg");
});

check('stray STDOUT text is rejected as a bad frame', function (): void {
    expectThrows(fn () => Frame::decode("hello from a careless echo\n"), 'CRC mismatch');
});

check('EOF before/inside a frame is a clear error', function (): void {
    expectThrows(fn () => (new StreamRelay(memory(''), memory()))->waitFrame(), 'unexpected EOF');
    $truncated = substr((new Frame('0123456789', [0]))->encode(), 0, 20);
    expectThrows(fn () => (new StreamRelay(memory($truncated), memory()))->waitFrame(), 'unexpected EOF');
});

check('too many options are refused on encode', function (): void {
    expectThrows(fn () => (new Frame('', range(1, 11)))->encode(), 'at most 10 options');
});

// ---------------------------------------------------------------- worker protocol

check('handshake: pid request answered with CONTROL 0x01, no options, {"pid":getmypid()}', function (): void {
    $in = (new Frame('{"pid":4242}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode()
        . (new Frame('{"lastTick":0}{"tick":0}', [14], Frame::CODEC_JSON))->encode();
    $worker = memoryWorker($in, $out);
    $payload = $worker->waitPayload();
    expect($payload instanceof Payload, 'a payload after the handshake');
    same('{"tick":0}', $payload->body, 'body');
    same('{"lastTick":0}', $payload->header, 'context');
    same(['lastTick' => 0], $payload->getContext(), 'getContext');
    $replies = frames(written($out));
    same(1, count($replies), 'one reply');
    same(Frame::CONTROL, $replies[0]->flags, 'reply flags');
    same([], $replies[0]->options, 'reply options');
    same(json_encode(['pid' => getmypid()]), $replies[0]->payload, 'reply body');
    same(0x13, ord(written($out)[0]), 'reply byte0');
});

check('control {"stop":true} makes waitPayload() return null', function (): void {
    $worker = memoryWorker((new Frame('{"stop":true}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode(), $out);
    same(null, $worker->waitPayload(), 'waitPayload');
    same('', written($out), 'nothing written');
});

check('stream STOP and PONG frames are skipped', function (): void {
    $in = (new Frame('', [], 0, Frame::STOP))->encode()
        . (new Frame('', [], 0, Frame::PONG))->encode()
        . (new Frame('body', [0]))->encode();
    $worker = memoryWorker($in, $out);
    same('body', $worker->waitPayload()?->body, 'payload after skipped frames');
});

check('data frame without the context option is an error', function (): void {
    $worker = memoryWorker((new Frame('body'))->encode(), $out);
    expectThrows(fn () => $worker->waitPayload(), 'context length option missing');
});

check('respond: flags 0, one option = context length, payload = context ++ body', function (): void {
    $worker = memoryWorker('', $out);
    $worker->respond(new Payload('OK'));
    $worker->respond(new Payload('body', '{"k":"v"}'));
    $worker->respond(new Payload('chunk', null, false));
    [$a, $b, $c] = frames(written($out));
    same([0, [0], 'OK', 0], [$a->flags, $a->options, $a->payload, $a->stream], 'empty context reply');
    same([0, [9], '{"k":"v"}body'], [$b->flags, $b->options, $b->payload], 'reply with context');
    same(Frame::STREAM, $c->stream, 'eos=false sets STREAM');
    same(0x14, ord(written($out)[0]), 'byte0 of reply');
});

check('error: flags 0x40, no options, payload = message', function (): void {
    $worker = memoryWorker('', $out);
    $worker->error('boom on tick 3');
    $raw = written($out);
    $f = Frame::decode($raw);
    same([Frame::ERROR, [], 'boom on tick 3'], [$f->flags, $f->options, $f->payload], 'error frame');
    same(0x13, ord($raw[0]), 'byte0');
});

check('stop: data frame, empty body, context exactly {"stop":true}', function (): void {
    $worker = memoryWorker('', $out);
    $worker->stop();
    $f = Frame::decode(written($out));
    same([0, [13], '{"stop":true}'], [$f->flags, $f->options, $f->payload], 'stop frame');
});

check('Payload defaults and getContext', function (): void {
    $p = new Payload();
    same(['', '', true, []], [$p->body, $p->header, $p->eos, $p->getContext()], 'defaults');
    expectThrows(fn () => (new Payload('', '"str"'))->getContext(), 'not a JSON object');
});

check('Environment defaults and values', function (): void {
    $d = new Environment();
    same(['', 'pipes', 'tcp://127.0.0.1:6001'], [$d->getMode(), $d->getRelayAddress(), $d->getRPCAddress()], 'defaults');
    $e = new Environment(['RR_MODE' => 'ticker', 'RR_RELAY' => 'tcp://127.0.0.1:7000', 'RR_RPC' => 'tcp://127.0.0.1:6002']);
    same(['ticker', 'tcp://127.0.0.1:7000', 'tcp://127.0.0.1:6002'], [$e->getMode(), $e->getRelayAddress(), $e->getRPCAddress()], 'values');
    putenv('RR_MODE=selftest');
    same('selftest', Environment::fromGlobals()->getMode(), 'fromGlobals sees putenv');
});

// ---------------------------------------------------------------- relays

check('Relay::create rejects bad addresses', function (): void {
    expectThrows(fn () => Relay::create('tcp://:7000'), 'unsupported relay address');
    expectThrows(fn () => Relay::create('tcp://127.0.0.1'), 'numeric port');
    expectThrows(fn () => Relay::create('udp://127.0.0.1:1'), 'unknown relay scheme');
    expectThrows(fn () => Relay::create('nonsense'), 'unsupported relay address');
    expect(Relay::create('pipes') instanceof StreamRelay, 'pipes gives a StreamRelay');
});

check('Relay::create tcp:// and unix:// connect and exchange frames', function (): void {
    $sockPath = sys_get_temp_dir() . '/rr-selftest-' . getmypid() . '.sock';
    @unlink($sockPath);
    $servers = [
        'tcp' => stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr),
        'unix' => stream_socket_server('unix://' . $sockPath, $errno, $errstr),
    ];
    try {
        foreach ($servers as $scheme => $server) {
            expect($server !== false, "listen $scheme: $errstr");
            $dsn = $scheme === 'tcp' ? 'tcp://' . stream_socket_get_name($server, false) : 'unix://' . $sockPath;
            $relay = Relay::create($dsn);
            expect($relay instanceof SocketRelay, "$dsn gives a SocketRelay");
            $conn = stream_socket_accept($server, 2);
            fwrite($conn, (new Frame('{"pid":1}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode());
            $worker = new Worker($relay, false);
            fwrite($conn, (new Frame('{"stop":true}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode());
            same(null, $worker->waitPayload(), "$scheme: stop after handshake");
            $reply = (new StreamRelay($conn, $conn))->waitFrame();
            same([Frame::CONTROL, json_encode(['pid' => getmypid()])], [$reply->flags, $reply->payload], "$scheme: pid reply");
            fclose($conn);
            expectThrows(fn () => $relay->waitFrame(), 'unexpected EOF');
        }
    } finally {
        @unlink($sockPath);
    }
});

check('output interception: echo goes to STDERR, STDOUT stays clean', function (): void {
    $code = 'require ' . var_export(__DIR__ . '/../../sdk/php/autoload.php', true) . ';'
        . '$m = fopen("php://memory", "w+b");'
        . 'new Rr\Worker(new Rr\Goridge\StreamRelay($m, $m));'
        . 'echo "careless echo\n"; print "and print\n";';
    $proc = proc_open([PHP_BINARY, '-r', $code], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    $stdout = stream_get_contents($pipes[1]);
    $stderr = stream_get_contents($pipes[2]);
    $rc = proc_close($proc);
    same(0, $rc, 'child exit code');
    same('', $stdout, 'child stdout');
    same("careless echo\nand print\n", $stderr, 'child stderr');
});

// ---------------------------------------------------------------- http: protobuf codec

check('proto varint: hand-computed vectors, negatives take 10 bytes', function (): void {
    $vectors = [0 => '00', 1 => '01', 127 => '7f', 128 => '8001', 201 => 'c901', 300 => 'ac02', 16384 => '808001',
        PHP_INT_MAX => 'ffffffffffffffff7f', -1 => 'ffffffffffffffffff01', PHP_INT_MIN => '80808080808080808001'];
    foreach ($vectors as $value => $hex) {
        same($hex, bin2hex(Proto::varint($value)), "varint($value)");
        $pos = 0;
        same($value, Proto::readVarint(hex2bin($hex), $pos), "readVarint($hex)");
        same(strlen($hex) / 2, $pos, "position after $hex");
    }
    $pos = 0;
    expectThrows(fn () => Proto::readVarint("\x80\x80", $pos), 'truncated varint');
    $pos = 0;
    expectThrows(fn () => Proto::readVarint(str_repeat("\xff", 11), $pos), 'longer than 10 bytes');
});

// Request{remote_addr:"1.2.3.4", method:"GET", header:{"A":["x","y"]}, parsed:true}, by hand:
//   0a 07 "1.2.3.4" | 1a 03 "GET" | 2a 0b [0a 01 "A" 12 06 [0a 01 "x" 0a 01 "y"]] | 40 01
const HAND_REQUEST = '0a07312e322e332e34' . '1a03474554' . '2a0b0a014112060a01780a0179' . '4001';

check('proto Request: decode hand-computed bytes, encode gives them back', function (): void {
    $m = Proto::decodeRequest(hex2bin(HAND_REQUEST));
    same('1.2.3.4', $m['remoteAddr'], 'remote_addr');
    same('GET', $m['method'], 'method');
    same(['A' => ['x', 'y']], $m['headers'], 'header map');
    same(true, $m['parsed'], 'parsed');
    same(['', '', '', [], [], ''], [$m['protocol'], $m['uri'], $m['rawQuery'], $m['cookies'], $m['attributes'], $m['uploads']], 'defaults');
    same(HAND_REQUEST, bin2hex(Proto::encodeRequest(['remoteAddr' => '1.2.3.4', 'method' => 'GET', 'headers' => ['A' => ['x', 'y']], 'parsed' => true])), 'encode');
});

check('proto Request: every field round-trips, binary and empty values kept', function (): void {
    $full = [
        'remoteAddr' => '::1', 'protocol' => 'HTTP/2.0', 'method' => 'POST',
        'uri' => 'https://example.com/a/b?x=1&y[]=2', 'headers' => ['Content-Type' => ['text/plain'], 'X-Many' => ['1', '', "\xff\x00bin"]],
        'cookies' => ['sid' => ['a b']], 'rawQuery' => 'x=1&y[]=2', 'parsed' => true,
        'uploads' => '{"f":{"name":"a.txt"}}', 'attributes' => ['ipAddress' => ['10.0.0.1']],
    ];
    same($full, Proto::decodeRequest(Proto::encodeRequest($full)), 'round trip');
    same('', Proto::encodeRequest([]), 'all defaults encode to nothing');
});

check('proto Request: unknown fields skipped, map entry without key/value, repeated value merged', function (): void {
    $unknownVarint = "\x98\x01\x2a";             // field 19, varint 42
    $unknownFixed = "\x59" . str_repeat("\0", 8) . "\x65" . str_repeat("\0", 4); // field 11 I64, field 12 I32
    $unknownLen = "\xa2\x06\x03abc";             // field 100, 3 bytes
    $noKey = "\x2a\x05\x12\x03\x0a\x01v";        // header entry with only a value => key ""
    $noValue = "\x32\x03\x0a\x01k";               // cookie entry with only a key => []
    $split = "\x2a\x0d\x0a\x01S\x12\x03\x0a\x011\x12\x03\x0a\x012"; // value message given twice
    $m = Proto::decodeRequest("\x1a\x03PUT" . $unknownVarint . $unknownFixed . $unknownLen . $noKey . $noValue . $split);
    same('PUT', $m['method'], 'method');
    same(['' => ['v'], 'S' => ['1', '2']], $m['headers'], 'headers');
    same(['k' => []], $m['cookies'], 'cookies');
    expectThrows(fn () => Proto::decodeRequest("\x0a\x05ab"), 'claims 5 bytes');
    expectThrows(fn () => Proto::decodeRequest("\x0b"), 'unsupported wire type 3');
});

check('proto Request: damaged bytes decode or fail with UnexpectedValueException, nothing else', function (): void {
    // The decoder reads one-byte tags and lengths in line; every shortcut must stay in bounds.
    set_error_handler(static function (int $no, string $message): never {
        throw new RuntimeException("PHP warning while decoding: $message");
    });
    try {
        $valid = Proto::encodeRequest([
            'remoteAddr' => '10.0.0.1', 'method' => 'POST', 'uri' => 'http://h/p?q=1',
            'headers' => ['A' => ['x', str_repeat('y', 200)], 'B' => ['']], 'cookies' => ['c' => ['1']],
            'rawQuery' => 'q=1', 'parsed' => true, 'attributes' => ['k' => ['v']],
        ]);
        mt_srand(7);
        $decoded = 0;
        for ($i = 0; $i < 3000; $i++) {
            $bytes = $valid;
            for ($n = mt_rand(1, 3); $n > 0; $n--) {
                $at = mt_rand(0, max(0, strlen($bytes) - 1));
                $bytes = match (mt_rand(0, 2)) {
                    0 => substr_replace($bytes, chr(mt_rand(0, 255)), $at, 1),
                    1 => substr($bytes, 0, $at),
                    default => substr_replace($bytes, chr(mt_rand(0, 255)), $at, 0),
                };
            }
            try {
                Proto::decodeRequest($bytes);
                $decoded++;
            } catch (UnexpectedValueException) {
            }
        }
        expect($decoded > 0, 'some damaged messages still decode (unknown fields are skipped)');
    } finally {
        restore_error_handler();
    }
});

check('proto Response: hand-computed bytes, negative and default status', function (): void {
    // status 201 => 08 c9 01; headers {"X":["1"]} => 12 08 [0a 01 "X" 12 03 [0a 01 "1"]]
    same('08c901' . '12080a015812030a0131', bin2hex(Proto::encodeResponse(201, ['X' => ['1']])), 'encode');
    same(['status' => 201, 'headers' => ['X' => ['1']]], Proto::decodeResponse(hex2bin('08c90112080a015812030a0131')), 'decode');
    same('08ffffffffffffffffff01', bin2hex(Proto::encodeResponse(-1)), 'negative status');
    same('', Proto::encodeResponse(0), 'status 0 not written');
    // empty values of a repeated bytes field are written: 12 0a [0a 01 "H" 12 05 [0a 01 "v" 0a 00]]
    same('120a0a014812050a01760a00', bin2hex(Proto::encodeResponse(0, ['H' => ['v', '']])), 'empty header value kept');
});

// ---------------------------------------------------------------- http: worker

/** A goridge data frame the http plugin would send: context = $context, PROTO codec. */
function httpFrame(string $context, string $body = '', int $codec = Frame::CODEC_PROTO): string
{
    return (new Frame($context . $body, [strlen($context)], $codec))->encode();
}

check('HttpWorker: proto request decoded into Request, reply uses the PROTO codec', function (): void {
    $ctx = Proto::encodeRequest([
        'remoteAddr' => '127.0.0.1', 'protocol' => 'HTTP/1.1', 'method' => 'POST', 'uri' => 'http://localhost:8080/p?a=1&b[]=2&b[]=3',
        'headers' => ['Content-Type' => ['application/x-www-form-urlencoded'], 'Accept' => ['a', 'b']],
        'cookies' => ['sid' => ['abc'], 'two' => ['x', 'y']], 'rawQuery' => 'a=1&b[]=2&b[]=3', 'parsed' => true,
        'uploads' => '{"f":{"name":"a.txt","mime":"text/plain","size":3,"error":0,"tmpName":"/tmp/upload1"}}',
        'attributes' => ['ipAddress' => ['10.1.1.1', 'ignored']],
    ]);
    $worker = new Worker(new StreamRelay(memory(httpFrame($ctx, '{"k":["v"]}')), $out = memory()), false);
    $http = new HttpWorker($worker);
    $r = $http->waitRequest();
    expect($r instanceof Request, 'a request');
    same(['127.0.0.1', 'HTTP/1.1', 'POST', 'http://localhost:8080/p?a=1&b[]=2&b[]=3'], [$r->remoteAddr, $r->protocol, $r->method, $r->uri], 'scalars');
    same(['Content-Type' => ['application/x-www-form-urlencoded'], 'Accept' => ['a', 'b']], $r->headers, 'headers');
    same('a, b', $r->getHeaderLine('accept'), 'getHeaderLine is case-insensitive');
    same(['sid' => 'abc', 'two' => 'x,y'], $r->cookies, 'cookies comma-joined');
    same(['a' => '1', 'b' => ['2', '3']], $r->query, 'query');
    same('a=1&b[]=2&b[]=3', $r->rawQuery, 'raw query');
    same(true, $r->parsed, 'parsed');
    same(['k' => ['v']], $r->parsedBody, 'parsedBody');
    same('{"k":["v"]}', $r->body, 'raw body');
    same('a.txt', $r->uploads['f']['name'], 'uploads tree');
    same([Request::PARSED_BODY_ATTRIBUTE_NAME => true, 'ipAddress' => '10.1.1.1'], $r->attributes, 'attributes');
    same('10.1.1.1', $r->getRemoteAddr(), 'getRemoteAddr prefers ipAddress');

    $http->respond(201, 'created', ['X-A' => 'b', 'Set-Cookie' => ['a=1', 'b=2']]);
    $f = frames(written($out))[0];
    same(Frame::CODEC_PROTO, $f->flags, 'reply flags = PROTO codec');
    same(0, $f->stream, 'no STREAM bit');
    $ctxLen = $f->options[0];
    same(['status' => 201, 'headers' => ['X-A' => ['b'], 'Set-Cookie' => ['a=1', 'b=2']]], Proto::decodeResponse(substr($f->payload, 0, $ctxLen)), 'reply context');
    same('created', substr($f->payload, $ctxLen), 'reply body');
});

check('HttpWorker: a reused reply head follows its headers, a Stringable that changes included', function (): void {
    $http = new HttpWorker(new Worker(new StreamRelay(memory(), $out = memory()), false));
    $tag = new class () {
        public string $value = 'one';

        public function __toString(): string
        {
            return $this->value;
        }
    };
    $http->respond(200, 'a', ['X' => ['1']]);
    $http->respond(200, 'b', ['X' => ['1']]);   // same plain headers: the head is reused
    $http->respond(200, 'c', ['X' => ['2']]);
    $http->respond(201, 'd', ['X' => ['2']]);
    $http->respond(201, 'e', ['X' => [$tag]]);
    $tag->value = 'two';
    $http->respond(201, 'f', ['X' => [$tag]]);  // same object, new text: encoded again
    $http->respond(201, 'g', ['X' => 7]);
    rewind($out);
    $heads = array_map(
        fn (Frame $f) => Proto::decodeResponse(substr($f->payload, 0, $f->options[0])),
        frames(stream_get_contents($out)),
    );
    same([
        [200, ['1']], [200, ['1']], [200, ['2']], [201, ['2']], [201, ['one']], [201, ['two']], [201, ['7']],
    ], array_map(fn (array $h) => [$h['status'], $h['headers']['X']], $heads), 'status and X of every reply');
});

check('HttpWorker: parsed with empty body gives [], unparsed gives null; stop => null', function (): void {
    $in = httpFrame(Proto::encodeRequest(['method' => 'DELETE', 'parsed' => true]))
        . httpFrame(Proto::encodeRequest(['method' => 'GET']), 'raw')
        . (new Frame('{"stop":true}', [], Frame::CONTROL))->encode();
    $http = new HttpWorker(new Worker(new StreamRelay(memory($in), memory()), false));
    $r = $http->waitRequest();
    same([[], '[]'], [$r?->parsedBody, $r?->body], 'parsed, empty body: empty tree, body "[]" as roadrunner-php/http');
    $r = $http->waitRequest();
    same([null, 'raw', []], [$r?->parsedBody, $r?->body, $r?->query], 'unparsed');
    same(null, $http->waitRequest(), 'stop');
});

check('HttpWorker: legacy JSON context is answered in JSON with the JSON codec', function (): void {
    $ctx = json_encode(['remoteAddr' => '1.1.1.1', 'protocol' => 'HTTP/1.0', 'method' => 'GET', 'uri' => 'http://h/?q=1',
        'headers' => ['Accept' => ['*/*']], 'cookies' => ['c' => 'v'], 'rawQuery' => 'q=1', 'parsed' => false, 'uploads' => null, 'attributes' => []]);
    $http = new HttpWorker(new Worker(new StreamRelay(memory(httpFrame($ctx, 'b', Frame::CODEC_JSON)), $out = memory()), false));
    $r = $http->waitRequest();
    same(['1.1.1.1', 'GET', ['Accept' => ['*/*']], ['c' => 'v'], ['q' => '1'], 'b'], [$r->remoteAddr, $r->method, $r->headers, $r->cookies, $r->query, $r->body], 'request');
    $http->respond(404, 'nope');
    $f = frames(written($out))[0];
    same(Frame::CODEC_JSON, $f->flags, 'JSON codec');
    same('{"status":404,"headers":{}}nope', $f->payload, 'JSON context, empty headers as {}');
});

check('HttpWorker: 1xx with a body is refused; 103 without body allowed', function (): void {
    $http = new HttpWorker(new Worker(new StreamRelay(memory(httpFrame(Proto::encodeRequest(['method' => 'GET']))), $out = memory()), false));
    $http->waitRequest();
    expectThrows(fn () => $http->respond(103, 'x'), 'informational');
    $http->respond(103, '', ['Link' => '</a.css>; rel=preload'], false);
    $http->respond(200, 'ok');
    $fs = frames(written($out));
    same([103, 200], array_map(fn (Frame $f) => Proto::decodeResponse(substr($f->payload, 0, $f->options[0]))['status'], $fs), 'statuses');
    same([Frame::STREAM, 0], array_map(fn (Frame $f) => $f->stream, $fs), 'the 103 is a stream chunk, the final reply ends the stream');
});

check('HttpWorker::respondStream: STREAM bit on chunks, last frame without it, generator return sent last', function (): void {
    $http = new HttpWorker(new Worker(new StreamRelay(memory(httpFrame(Proto::encodeRequest(['method' => 'GET']))), $out = memory()), false));
    $http->waitRequest();
    $gen = (function () {
        yield 'a';
        yield 'b';

        return 'end';
    })();
    same(true, $http->respondStream(200, $gen, ['Content-Type' => 'text/plain']), 'completed');
    $fs = frames(written($out));
    same([Frame::STREAM, Frame::STREAM, 0], array_map(fn (Frame $f) => $f->stream, $fs), 'stream bits');
    same(['a', 'b', 'end'], array_map(fn (Frame $f) => substr($f->payload, $f->options[0]), $fs), 'chunks');
    foreach ($fs as $f) {
        same(Frame::CODEC_PROTO, $f->flags, 'codec on every frame');
        same(['status' => 200, 'headers' => ['Content-Type' => ['text/plain']]], Proto::decodeResponse(substr($f->payload, 0, $f->options[0])), 'head on every frame');
    }
});

check('HttpWorker::respond: endOfStream=false chunks and a Generator body, as roadrunner-php/http', function (): void {
    $http = new HttpWorker(new Worker(new StreamRelay(memory(httpFrame(Proto::encodeRequest(['method' => 'GET']))), $out = memory()), false));
    $http->waitRequest();
    $http->respond(200, 'part1', [], false);
    $http->respond(200, (function () {
        yield 'part2';
    })(), [], false);
    $http->respond(200, 'done');
    $fs = frames(written($out));
    same([[Frame::STREAM, 'part1'], [Frame::STREAM, 'part2'], [0, 'done']], array_map(fn (Frame $f) => [$f->stream, substr($f->payload, $f->options[0])], $fs), 'frames');
});

check('HttpWorker::respondStream: a server STOP throws into the generator and closes the stream', function (): void {
    // the request, then a STOP frame already waiting in the relay
    $in = httpFrame(Proto::encodeRequest(['method' => 'GET'])) . (new Frame('', [], 0, Frame::STOP))->encode();
    $http = new HttpWorker(new Worker(new StreamRelay(memory($in), $out = memory()), false));
    $http->waitRequest();
    $seen = null;
    $gen = (function () use (&$seen) {
        try {
            yield 'first';
            yield 'second';
        } catch (\Rr\Http\Exception\StreamStoppedException $e) {
            $seen = $e->getMessage();
        }
    })();
    same(false, $http->respondStream(200, $gen), 'cut short');
    expect(is_string($seen), 'generator saw StreamStoppedException');
    $fs = frames(written($out));
    same([0], array_map(fn (Frame $f) => $f->stream, $fs), 'only the closing frame (STOP seen before the first chunk)');
});

check('tests/php/http_echo.php over real pipes: echo, upload description, status/header steering, error, stop', function (): void {
    $proc = proc_open([PHP_BINARY, __DIR__ . '/http_echo.php'], [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, ['RR_MODE' => 'http', 'RR_RELAY' => 'pipes']);
    $relay = new StreamRelay($pipes[1], $pipes[0]);
    $tmp = tempnam(sys_get_temp_dir(), 'upload');
    file_put_contents($tmp, 'file-bytes');
    try {
        $relay->send(new Frame('{"pid":1}', [], Frame::CONTROL));
        same(Frame::CONTROL, $relay->waitFrame()->flags, 'pid handshake answered');
        $exchange = function (array $request, string $body = '') use ($relay): array {
            $ctx = Proto::encodeRequest($request);
            $relay->send(new Frame($ctx . $body, [strlen($ctx)], Frame::CODEC_PROTO));
            $f = $relay->waitFrame();
            if ($f->hasFlag(Frame::ERROR)) {
                return ['error' => $f->payload];
            }

            return Proto::decodeResponse(substr($f->payload, 0, $f->options[0])) + ['body' => substr($f->payload, $f->options[0]), 'flags' => $f->flags];
        };
        $uploads = json_encode(['doc' => ['name' => 'a.txt', 'mime' => 'text/plain', 'size' => 10, 'error' => 0, 'tmpName' => $tmp],
            'gone' => [['name' => 'b', 'mime' => '', 'size' => 0, 'error' => 0, 'tmpName' => $tmp . '.missing']]]);
        $r = $exchange(['method' => 'POST', 'uri' => 'http://h/x?status=201&header[X-A]=b&header[X-M][]=1&header[X-M][]=2', 'rawQuery' => 'status=201&header[X-A]=b&header[X-M][]=1&header[X-M][]=2',
            'headers' => ['Content-Type' => ['multipart/form-data; boundary=x']], 'parsed' => true, 'uploads' => $uploads], '{"field":"v"}');
        same(Frame::CODEC_PROTO, $r['flags'], 'PROTO codec');
        same(201, $r['status'], 'status from query');
        same(['b'], $r['headers']['X-A'], 'header from query');
        same(['1', '2'], $r['headers']['X-M'], 'multi-value header from query');
        same(['application/json'], $r['headers']['Content-Type'], 'content type');
        $echo = json_decode($r['body'], true);
        same('POST', $echo['method'], 'echoed method');
        same(['field' => 'v'], $echo['parsedBody'], 'echoed parsed body');
        same([true, hash('sha256', 'file-bytes'), 10], [$echo['uploads']['doc']['exists'], $echo['uploads']['doc']['sha256'], $echo['uploads']['doc']['actualSize']], 'upload described');
        same([false, null], [$echo['uploads']['gone'][0]['exists'], $echo['uploads']['gone'][0]['sha256']], 'missing upload described');
        same(['error' => 'http_echo: requested error'], $exchange(['method' => 'GET', 'rawQuery' => 'error=1']), 'error=1');
        $raw = $exchange(['method' => 'PUT', 'rawQuery' => 'raw=1'], "\x00\xffbinary");
        same("\x00\xffbinary", $raw['body'], 'raw=1 echoes bytes');
        // Streamed reply over real pipes; a STOP sent after the first chunk ends the stream early.
        $ctx = Proto::encodeRequest(['method' => 'GET', 'rawQuery' => 'stream=1000&stream_delay_ms=5']);
        $relay->send(new Frame($ctx, [strlen($ctx)], Frame::CODEC_PROTO));
        $first = $relay->waitFrame();
        same([Frame::CODEC_PROTO, Frame::STREAM, 'chunk 0' . "\n"], [$first->flags, $first->stream, substr($first->payload, $first->options[0])], 'first chunk');
        $relay->send(new Frame('', [], 0, Frame::STOP));
        $n = 1;
        do {
            $f = $relay->waitFrame();
            $n++;
        } while (($f->stream & Frame::STREAM) !== 0);
        expect($n < 1000, "stream ended early after a STOP ($n frames)");
        same('', substr($f->payload, $f->options[0]), 'closing frame has no body');
        $after = $exchange(['method' => 'GET', 'rawQuery' => 'status=202']);
        same(202, $after['status'], 'worker serves the next request after a stopped stream');
        $relay->send(new Frame('{"stop":true}', [], Frame::CONTROL));
        same('', stream_get_contents($pipes[1]), 'nothing after stop');
        same(0, proc_close($proc), 'clean exit after stop');
    } finally {
        @unlink($tmp);
    }
});

fwrite(STDOUT, "$passed passed, $failed failed\n");
exit($failed === 0 ? 0 : 1);
