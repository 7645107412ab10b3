<?php

/**
 * The streaming worker of tests/php/http_stream.php (routes /gated, /hints, /endless, /pid and
 * the same STDERR events) on the OFFICIAL packages: roadrunner-php/http >= 3.5 HttpWorker and
 * roadrunner-php/worker, loaded from the autoloader named by RR_OFFICIAL_HTTP_AUTOLOAD.
 * The packages are not part of this repository; crates/rr/tests/http_stream_e2e.rs runs this
 * worker only when they are installed.
 */

declare(strict_types=1);

require (string) getenv('RR_OFFICIAL_HTTP_AUTOLOAD');

use Spiral\RoadRunner\Http\Exception\StreamStoppedException;
use Spiral\RoadRunner\Http\HttpWorker;
use Spiral\RoadRunner\Worker;

$http = new HttpWorker(Worker::create());
$pid = getmypid();
fwrite(STDERR, "READY pid=$pid lib=official\n");

while ($request = $http->waitRequest()) {
    $path = (string) parse_url($request->uri, PHP_URL_PATH);
    $text = ['Content-Type' => ['text/plain']];
    switch ($path) {
        case '/gated':
            $fifo = (string) ($request->query['fifo'] ?? '');
            $http->respond(200, (static function () use ($fifo, $pid): Generator {
                $gate = fopen($fifo, 'r+');
                yield "first\n";
                fwrite(STDERR, "STREAM_FIRST pid=$pid path=/gated\n");
                $read = [$gate];
                $write = $except = null;
                $ready = stream_select($read, $write, $except, 10);
                yield $ready > 0 ? 'after-gate ' . trim((string) fgets($gate)) . "\n" : "gate-timeout\n";
                fclose($gate);

                return "last\n";
            })(), $text);
            fwrite(STDERR, "STREAM_DONE pid=$pid path=/gated\n");
            break;
        case '/hints':
            $http->respond(103, '', ['Link' => ['</style.css>; rel=preload; as=style']], false);
            $http->respond(201, (static function (): Generator {
                yield 'a';
                yield 'b';

                return 'c';
            })(), ['X-Final' => ['yes']] + $text);
            fwrite(STDERR, "STREAM_DONE pid=$pid path=/hints\n");
            break;
        case '/endless':
            $http->respond(200, (static function () use ($pid): Generator {
                $chunk = str_repeat('e', 16 * 1024);
                $chunks = 0;
                try {
                    for (; $chunks < 100000; $chunks++) {
                        yield $chunk;
                    }
                } catch (StreamStoppedException) {
                    fwrite(STDERR, "STREAM_STOPPED pid=$pid chunks=$chunks\n");
                }
            })(), $text);
            break;
        default:
            $http->respond(200, (string) $pid, $text);
    }
}
