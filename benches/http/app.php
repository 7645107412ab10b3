<?php

/**
 * The HTTP benchmark's app, identical for every server: `/hello` answers
 * "Hello, world!" as text/plain, `/json` a 4 KiB JSON document (65 items, 4,066 bytes).
 *
 * Under php-fpm (any SAPI but cli) it answers the one request and returns;
 * under rr (or RoadRunner, whose http.v1 protocol is the same) it is a
 * long-lived worker on the PHP SDK's HttpWorker.
 */

declare(strict_types=1);

/**
 * The response for a path. The JSON document is encoded on every request, on
 * every server, so both sides pay the same PHP work per request.
 *
 * @return array{0: string, 1: string} content type and body
 */
function bench_response(string $path): array
{
    if ($path === '/json') {
        $items = [];
        for ($i = 0; $i < 65; $i++) {
            $items[] = ['id' => $i, 'name' => "item $i", 'tags' => ['bench', 'php'], 'price' => $i * 1.25];
        }

        return ['application/json', (string) json_encode($items)];
    }

    return ['text/plain', 'Hello, world!'];
}

if (PHP_SAPI !== 'cli') {
    [$type, $body] = bench_response((string) parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH));
    header("Content-Type: $type");
    echo $body;

    return;
}

require __DIR__ . '/../../sdk/php/autoload.php';

$worker = Rr\Http\HttpWorker::create();
while (($request = $worker->waitRequest()) !== null) {
    [$type, $body] = bench_response((string) parse_url($request->uri, PHP_URL_PATH));
    $worker->respond(200, $body, ['Content-Type' => [$type]]);
}
