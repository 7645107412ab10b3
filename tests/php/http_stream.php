<?php

/**
 * Streaming HTTP worker for crates/rr/tests/http_stream_e2e.rs, on Rr\Http\HttpWorker.
 *
 * The path picks the behaviour:
 *   /gated?fifo=PATH     open the FIFO PATH, stream "first\n", then wait (up to 10 s) for a line on
 *                        the FIFO and stream "after-gate\n" (or "gate-timeout\n" when none came),
 *                        then "last\n". The test writes the line only once it has read "first",
 *                        which proves the chunk reached the client before the worker went on.
 *   /hints               a 103 Early Hints frame (Link header), then a streamed 201 with
 *                        X-Final: yes, chunks "a", "b" and the return value "c"
 *   /endless             stream 16 KiB chunks until the server stops the stream (client gone),
 *                        at most 100000 of them
 *   /stubborn            stream "tick\n" every 20 ms, never looking for a stream stop
 *   /fail                stream "partial\n", then the generator throws
 *   /pid (anything else) reply with this worker's pid, not streamed
 *
 * STDERR events (one line each):
 *   READY pid=P
 *   STREAM_FIRST pid=P path=/...     the first chunk of a stream was handed to the relay
 *   STREAM_STOPPED pid=P chunks=N    the server stopped the stream after N chunks
 *   STREAM_DONE pid=P path=/...      a stream ended normally
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Http\Exception\StreamStoppedException;
use Rr\Http\HttpWorker;

$http = HttpWorker::create();
$pid = getmypid();
fwrite(STDERR, "READY pid=$pid\n");

while ($request = $http->waitRequest()) {
    $path = (string) parse_url($request->uri, PHP_URL_PATH);
    $text = ['Content-Type' => 'text/plain'];
    switch ($path) {
        case '/gated':
            $fifo = (string) ($request->query['fifo'] ?? '');
            $gated = (static function () use ($fifo, $pid): Generator {
                // r+ does not block on a FIFO without a writer, and keeps it open for select().
                $gate = fopen($fifo, 'r+');
                yield "first\n";
                fwrite(STDERR, "STREAM_FIRST pid=$pid path=/gated\n");
                $read = [$gate];
                $write = $except = null;
                $ready = stream_select($read, $write, $except, 10);
                yield $ready > 0 ? 'after-gate ' . trim((string) fgets($gate)) . "\n" : "gate-timeout\n";
                fclose($gate);

                return "last\n";
            })();
            $http->respond(200, $gated, $text);
            fwrite(STDERR, "STREAM_DONE pid=$pid path=/gated\n");
            break;
        case '/hints':
            $http->respond(103, '', ['Link' => '</style.css>; rel=preload; as=style'], false);
            $http->respond(201, (static function (): Generator {
                yield 'a';
                yield 'b';

                return 'c';
            })(), ['X-Final' => 'yes'] + $text);
            fwrite(STDERR, "STREAM_DONE pid=$pid path=/hints\n");
            break;
        case '/endless':
            $chunks = 0;
            $endless = (static function () use (&$chunks, $pid): Generator {
                $chunk = str_repeat('e', 16 * 1024);
                try {
                    for ($chunks = 0; $chunks < 100000; $chunks++) {
                        yield $chunk;
                    }
                } catch (StreamStoppedException) {
                    fwrite(STDERR, "STREAM_STOPPED pid=$pid chunks=$chunks\n");
                }
            })();
            $http->respond(200, $endless, $text);
            break;
        case '/stubborn':
            // Ignores the stop on purpose: only stream_timeout ends this.
            for ($i = 0; ; $i++) {
                $http->respond(200, "tick\n", $text, false);
                if ($i === 0) {
                    fwrite(STDERR, "STREAM_FIRST pid=$pid path=/stubborn\n");
                }
                usleep(20_000);
            }
        case '/fail':
            $http->respond(200, (static function (): Generator {
                yield "partial\n";
                throw new RuntimeException('generator failed');
            })(), $text);
            break;
        default:
            $http->respond(200, (string) $pid, $text);
    }
}
