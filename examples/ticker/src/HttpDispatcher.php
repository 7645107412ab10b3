<?php

declare(strict_types=1);

namespace App;

/**
 * Serves the http plugin's requests (RR_MODE=http) next to the ticker, from the same app.
 *
 * Routes:
 *   GET  /              HTML page with the latest ticks recorded by TickerDispatcher
 *   GET  /ticks?n=N     the last N (default 10) lines of the tick log as JSON
 *   GET  /hello?name=X  {"hello": X, "pid": <worker pid>}
 *   POST /echo          the request's parsed form (urlencoded/multipart), JSON body, or raw size
 *   anything else       404
 */
final class HttpDispatcher implements DispatcherInterface
{
    public function __construct(
        private readonly Finalizer $finalizer,
        private readonly string $logFile,
    ) {
    }

    public function canServe(): bool
    {
        return getenv('RR_MODE') === 'http';
    }

    public function serve(): void
    {
        $http = WorkerFactory::http();
        fwrite(STDERR, sprintf("http worker pid %d ready (%s)\n", getmypid(), WorkerFactory::httpLibrary()));

        while ($request = $http->waitRequest()) {
            try {
                [$status, $body, $headers] = $this->handle($request);
            } catch (\Throwable $e) {
                fwrite(STDERR, sprintf("http: %s: %s\n", $e::class, $e->getMessage()));
                [$status, $body, $headers] = [500, "internal error\n", ['Content-Type' => ['text/plain']]];
            }
            $http->respond($status, $body, $headers);

            // Reset stateful services before the next request.
            $this->finalizer->finalize();
        }
    }

    /**
     * @param object $request Rr\Http\Request or Spiral\RoadRunner\Http\Request (same public properties)
     * @return array{0:int, 1:string, 2:array<string, list<string>>}
     */
    private function handle(object $request): array
    {
        $path = (string) parse_url($request->uri, PHP_URL_PATH);

        return match ([$request->method, $path]) {
            ['GET', '/'] => $this->html(200, $this->page()),
            ['GET', '/ticks'] => $this->json(200, $this->ticks(max(1, min(1000, (int) ($request->query['n'] ?? 10))))),
            ['GET', '/hello'] => $this->json(200, ['hello' => (string) ($request->query['name'] ?? 'world'), 'pid' => getmypid()]),
            ['POST', '/echo'] => $this->json(200, $this->echo($request)),
            default => $this->json(404, ['error' => "no route for {$request->method} $path"]),
        };
    }

    private function echo(object $request): array
    {
        $contentType = implode(', ', $request->headers['Content-Type'] ?? []);
        if ($request->parsed) {
            $files = [];
            $uploads = $request->uploads; // array_walk_recursive takes a reference; the property is readonly
            array_walk_recursive($uploads, static function ($value, $key) use (&$files): void {
                if ($key === 'name') {
                    $files[] = $value;
                }
            });

            return ['form' => json_decode($request->body, true), 'files' => $files];
        }
        if (str_contains($contentType, 'application/json')) {
            return ['json' => json_decode($request->body, true)];
        }

        return ['bytes' => strlen($request->body), 'contentType' => $contentType];
    }

    /** @return list<string> the last $n lines of the tick log */
    private function ticks(int $n): array
    {
        if (!is_file($this->logFile)) {
            return [];
        }
        $lines = file($this->logFile, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [];

        return array_slice($lines, -$n);
    }

    private function page(): string
    {
        $items = array_map(static fn (string $l): string => '<li>' . htmlspecialchars($l) . '</li>', array_reverse($this->ticks(10)));

        return '<!doctype html><meta charset="utf-8"><title>ticker</title>'
            . '<h1>Latest ticks</h1><ul>' . ($items ? implode('', $items) : '<li>no ticks yet</li>') . '</ul>'
            . sprintf('<p>served by PHP worker pid %d</p>', getmypid())
            . '<form method="post" action="/echo" enctype="multipart/form-data">'
            . '<input name="note" placeholder="note"> <input type="file" name="attachment"> <button>POST /echo</button></form>';
    }

    /** @return array{0:int, 1:string, 2:array<string, list<string>>} */
    private function json(int $status, array $data): array
    {
        return [$status, json_encode($data, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) . "\n", ['Content-Type' => ['application/json']]];
    }

    /** @return array{0:int, 1:string, 2:array<string, list<string>>} */
    private function html(int $status, string $html): array
    {
        return [$status, $html, ['Content-Type' => ['text/html; charset=utf-8']]];
    }
}
