<?php

/**
 * Self-test of Rr\Http\Psr7Worker against a real PSR-7 implementation, no server needed.
 *
 *     RR_PSR7_AUTOLOAD=/path/to/vendor/autoload.php php tests/php/http_psr7_selftest.php
 *
 * The autoloader must provide psr/http-message, psr/http-factory and nyholm/psr7 (the SDK
 * itself has no dependencies, so they are not in this repository). Without RR_PSR7_AUTOLOAD
 * (or when nyholm/psr7 cannot be loaded) the script prints "skipped: ..." and exits 0.
 * Otherwise: one line per check, then "N passed, M failed"; exit 1 on any failure.
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Nyholm\Psr7\Factory\Psr17Factory;
use Psr\Http\Message\UploadedFileInterface;
use Rr\Goridge\Frame;
use Rr\Goridge\StreamRelay;
use Rr\Http\HttpWorker;
use Rr\Http\Proto;
use Rr\Http\Psr7Worker;
use Rr\Worker;

$autoload = getenv('RR_PSR7_AUTOLOAD');
if ($autoload === false || $autoload === '' || !is_file($autoload)) {
    fwrite(STDOUT, "skipped: set RR_PSR7_AUTOLOAD to an autoloader with psr/http-message, psr/http-factory and nyholm/psr7\n");
    exit(0);
}
require $autoload;
if (!class_exists(Psr17Factory::class)) {
    fwrite(STDOUT, "skipped: nyholm/psr7 not found through $autoload\n");
    exit(0);
}

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
        fwrite(STDOUT, "FAIL $name: " . get_class($e) . ': ' . $e->getMessage() . ' at line ' . $e->getLine() . "\n");
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
    $s = fopen('php://memory', 'w+b');
    fwrite($s, $bytes);
    rewind($s);

    return $s;
}

/** A Psr7Worker reading the given requests (encoded as the server would), writing into $out. */
function psr7(array $requests, &$out, Psr17Factory $f): Psr7Worker
{
    $in = '';
    foreach ($requests as [$request, $body]) {
        $ctx = Proto::encodeRequest($request);
        $in .= (new Frame($ctx . $body, [strlen($ctx)], Frame::CODEC_PROTO))->encode();
    }
    $out = memory();

    return new Psr7Worker(new Worker(new StreamRelay(memory($in), $out), false), $f, $f, $f);
}

/** @return list<array{status:int, headers:array, body:string, stream:int, flags:int}> */
function replies($out): array
{
    rewind($out);
    $relay = new StreamRelay($out, memory());
    $replies = [];
    while (!feof($out)) {
        try {
            $frame = $relay->waitFrame();
        } catch (Rr\Goridge\RelayException) {
            break;
        }
        $replies[] = Proto::decodeResponse(substr($frame->payload, 0, $frame->options[0]))
            + ['body' => substr($frame->payload, $frame->options[0]), 'stream' => $frame->stream, 'flags' => $frame->flags];
    }

    return $replies;
}

$f = new Psr17Factory();

check('server request: method, uri, protocol, headers, cookies, query, attributes, $_SERVER', function () use ($f): void {
    $_SERVER['KEEP_ME'] = 'yes'; // captured when the worker is created
    $w = psr7([[[
        'remoteAddr' => '10.0.0.2', 'protocol' => 'HTTP/2.0', 'method' => 'GET', 'uri' => 'https://example.com:8443/p/q?a=1&b[]=2',
        'headers' => ['Accept' => ['text/html', 'application/json'], 'Content-Type' => ['text/plain'], 'Content-Length' => ['0'], 'X-Forwarded-For' => ['1.1.1.1']],
        'cookies' => ['sid' => ['abc']], 'rawQuery' => 'a=1&b[]=2', 'attributes' => ['ipAddress' => ['9.9.9.9']],
    ], '']], $out, $f);
    $r = $w->waitRequest();
    same('GET', $r->getMethod(), 'method');
    same('https://example.com:8443/p/q?a=1&b%5B%5D=2', (string) $r->getUri(), 'uri (nyholm percent-encodes brackets)');
    same('example.com', $r->getUri()->getHost(), 'host');
    same('2', $r->getProtocolVersion(), 'HTTP/2.0 => 2');
    same(['text/html', 'application/json'], $r->getHeader('accept'), 'multi-value header');
    same(['sid' => 'abc'], $r->getCookieParams(), 'cookies');
    same(['a' => '1', 'b' => ['2']], $r->getQueryParams(), 'query');
    same('9.9.9.9', $r->getAttribute('ipAddress'), 'attribute');
    same(false, $r->getAttribute('rr_parsed_body'), 'rr_parsed_body attribute');
    same(null, $r->getParsedBody(), 'no parsed body');
    same('', (string) $r->getBody(), 'empty body');
    $s = $r->getServerParams();
    same(['https://example.com:8443/p/q?a=1&b[]=2', 'GET', '9.9.9.9', 'text/html, application/json', 'text/plain', '0', '1.1.1.1', ''],
        [$s['REQUEST_URI'], $s['REQUEST_METHOD'], $s['REMOTE_ADDR'], $s['HTTP_ACCEPT'], $s['CONTENT_TYPE'], $s['CONTENT_LENGTH'], $s['HTTP_X_FORWARDED_FOR'], $s['HTTP_USER_AGENT']], '$_SERVER entries');
    same(false, isset($s['HTTP_CONTENT_TYPE']), 'no HTTP_CONTENT_TYPE');
    same(true, is_int($s['REQUEST_TIME']) && is_float($s['REQUEST_TIME_FLOAT']), 'request time');
    same($s, $_SERVER, '$_SERVER replaced');
    same('yes', $_SERVER['KEEP_ME'] ?? null, 'original $_SERVER entries kept');
});

check('protocol versions: HTTP/1.0, HTTP/1.1, HTTP/3.0 => 1.1', function () use ($f): void {
    $w = psr7([[['protocol' => 'HTTP/1.0', 'method' => 'GET', 'uri' => 'http://h/'], ''], [['protocol' => 'HTTP/1.1', 'method' => 'GET', 'uri' => 'http://h/'], ''], [['protocol' => 'HTTP/3.0', 'method' => 'GET', 'uri' => 'http://h/'], '']], $out, $f);
    same(['1.0', '1.1', '1.1'], [$w->waitRequest()->getProtocolVersion(), $w->waitRequest()->getProtocolVersion(), $w->waitRequest()->getProtocolVersion()], 'versions');
});

check('parsed form body and uploaded files (tree, error => empty stream)', function () use ($f): void {
    $tmp = tempnam(sys_get_temp_dir(), 'upload');
    file_put_contents($tmp, 'hello upload');
    try {
        $uploads = ['avatar' => ['name' => 'me.png', 'mime' => 'image/png', 'size' => 12, 'error' => 0, 'tmpName' => $tmp],
            'docs' => [['name' => 'a.txt', 'mime' => 'text/plain', 'size' => 12, 'error' => 0, 'tmpName' => $tmp], ['name' => 'b.exe', 'mime' => '', 'size' => 0, 'error' => 8, 'tmpName' => '']]];
        $w = psr7([[['method' => 'POST', 'uri' => 'http://h/up', 'parsed' => true, 'uploads' => json_encode($uploads),
            'headers' => ['Content-Type' => ['multipart/form-data; boundary=x']]], '{"name":"n","tags":["a","b"]}']], $out, $f);
        $r = $w->waitRequest();
        same(['name' => 'n', 'tags' => ['a', 'b']], $r->getParsedBody(), 'parsed body');
        same(true, $r->getAttribute('rr_parsed_body'), 'rr_parsed_body');
        $files = $r->getUploadedFiles();
        $avatar = $files['avatar'];
        same(true, $avatar instanceof UploadedFileInterface, 'leaf is an UploadedFileInterface');
        same(['me.png', 'image/png', 12, UPLOAD_ERR_OK, 'hello upload'], [$avatar->getClientFilename(), $avatar->getClientMediaType(), $avatar->getSize(), $avatar->getError(), (string) $avatar->getStream()], 'avatar');
        same('hello upload', (string) $files['docs'][0]->getStream(), 'list leaf');
        same(8, $files['docs'][1]->getError(), 'error code kept');
    } finally {
        @unlink($tmp);
    }
});

check('parsed with an empty body gives [] (as roadrunner-php/http)', function () use ($f): void {
    $w = psr7([[['method' => 'DELETE', 'uri' => 'http://h/', 'parsed' => true], '']], $out, $f);
    same([], $w->waitRequest()->getParsedBody(), 'parsed body');
});

check('respond: status, multi-value headers, body; PROTO codec', function () use ($f): void {
    $w = psr7([[['method' => 'GET', 'uri' => 'http://h/'], '']], $out, $f);
    $w->waitRequest();
    $w->respond($f->createResponse(404)->withHeader('Set-Cookie', ['a=1', 'b=2'])->withHeader('Content-Type', 'text/plain')->withBody($f->createStream('not here')));
    $r = replies($out);
    same(1, count($r), 'one frame');
    same([404, ['Set-Cookie' => ['a=1', 'b=2'], 'Content-Type' => ['text/plain']], 'not here', 0, Frame::CODEC_PROTO], [$r[0]['status'], $r[0]['headers'], $r[0]['body'], $r[0]['stream'], $r[0]['flags']], 'reply');
});

check('respond with chunkSize: body streamed in frames, last one without STREAM', function () use ($f): void {
    $w = psr7([[['method' => 'GET', 'uri' => 'http://h/'], '']], $out, $f);
    $w->chunkSize = 4;
    $w->waitRequest();
    $w->respond($f->createResponse(200)->withBody($f->createStream('0123456789')));
    $r = replies($out);
    same(['0123', '4567', '89', ''], array_column($r, 'body'), 'chunks');
    same([Frame::STREAM, Frame::STREAM, Frame::STREAM, 0], array_column($r, 'stream'), 'stream bits');
});

check('HttpWorker is accepted directly', function () use ($f): void {
    $http = new HttpWorker(new Worker(new StreamRelay(memory(), memory()), false));
    same($http, (new Psr7Worker($http, $f, $f, $f))->getHttpWorker(), 'same HttpWorker');
});

fwrite(STDOUT, "$passed passed, $failed failed\n");
exit($failed === 0 ? 0 : 1);
