<?php

declare(strict_types=1);

namespace Rr\Http;

use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestFactoryInterface;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Message\StreamFactoryInterface;
use Psr\Http\Message\StreamInterface;
use Psr\Http\Message\UploadedFileFactoryInterface;
use Psr\Http\Message\UploadedFileInterface;
use Rr\Worker;

/**
 * PSR-7 front of {@see HttpWorker}, with the semantics of `Spiral\RoadRunner\Http\PSR7Worker`
 * (roadrunner-php/http). Needs `psr/http-message`, `psr/http-factory` and an implementation
 * (e.g. `nyholm/psr7`); the SDK itself does not depend on them.
 *
 *     $factory = new \Nyholm\Psr7\Factory\Psr17Factory();
 *     $psr7 = new Psr7Worker(HttpWorker::create(), $factory, $factory, $factory);
 *     while ($request = $psr7->waitRequest()) {
 *         $psr7->respond($factory->createResponse(200)->withBody($factory->createStream('hi')));
 *     }
 *
 * For every request `$_SERVER` is rebuilt from the worker's original `$_SERVER` plus
 * `REQUEST_URI` (the absolute URI), `REQUEST_TIME`, `REQUEST_TIME_FLOAT`, `REMOTE_ADDR`,
 * `REQUEST_METHOD`, `HTTP_USER_AGENT` ('' unless sent) and one `HTTP_<NAME>` per header
 * (`CONTENT_TYPE` / `CONTENT_LENGTH` without the prefix), values joined with ", ".
 * The server request carries protocol version (`2` for HTTP/2, `1.0`/`1.1`, else `1.1`),
 * cookies, query, uploaded files (error != 0 => empty stream), attributes (including
 * `rr_parsed_body`), headers, the parsed body when the server parsed a form, and the raw body.
 */
class Psr7Worker
{
    /** Response bodies larger than this many bytes are streamed in chunks of this size; 0 = never stream. */
    public int $chunkSize = 0;

    private readonly HttpWorker $httpWorker;

    /** @var array<array-key, mixed> */
    private readonly array $originalServer;

    /**
     * @param HttpWorker|Worker $worker the worker to read requests from
     */
    public function __construct(
        HttpWorker|Worker $worker,
        private readonly ServerRequestFactoryInterface $requestFactory,
        private readonly StreamFactoryInterface $streamFactory,
        private readonly UploadedFileFactoryInterface $uploadsFactory,
    ) {
        $this->httpWorker = $worker instanceof HttpWorker ? $worker : new HttpWorker($worker);
        $this->originalServer = $_SERVER;
    }

    /** The HTTP worker underneath. */
    public function getHttpWorker(): HttpWorker
    {
        return $this->httpWorker;
    }

    /** The goridge worker underneath (for error() and stop()). */
    public function getWorker(): Worker
    {
        return $this->httpWorker->getWorker();
    }

    /**
     * Block until the next request; also replaces `$_SERVER` (see the class comment).
     *
     * @return ServerRequestInterface|null null when the server asks the worker to stop
     * @throws \Rr\Goridge\RelayException|\UnexpectedValueException|\JsonException
     */
    public function waitRequest(): ?ServerRequestInterface
    {
        $request = $this->httpWorker->waitRequest();
        if ($request === null) {
            return null;
        }
        $_SERVER = $this->configureServer($request);

        return $this->mapRequest($request, $_SERVER);
    }

    /**
     * Send a PSR-7 response (status, every header with all its values, body).
     *
     * @throws \Rr\Goridge\RelayException
     */
    public function respond(ResponseInterface $response): void
    {
        $body = $response->getBody();
        if ($this->chunkSize > 0) {
            $size = $body->getSize();
            if ($size === null || $size > $this->chunkSize) {
                $this->httpWorker->respondStream($response->getStatusCode(), $this->chunks($body), $response->getHeaders());

                return;
            }
        }
        $this->httpWorker->respond($response->getStatusCode(), (string) $body, $response->getHeaders());
    }

    /**
     * The `$_SERVER` array for one request.
     *
     * @return array<array-key, mixed>
     */
    protected function configureServer(Request $request): array
    {
        $server = $this->originalServer;
        $server['REQUEST_URI'] = $request->uri;
        $server['REQUEST_TIME'] = time();
        $server['REQUEST_TIME_FLOAT'] = microtime(true);
        $server['REMOTE_ADDR'] = $request->getRemoteAddr();
        $server['REQUEST_METHOD'] = $request->method;
        $server['HTTP_USER_AGENT'] = '';
        foreach ($request->headers as $name => $values) {
            $key = strtoupper(str_replace('-', '_', (string) $name));
            if ($key === 'CONTENT_TYPE' || $key === 'CONTENT_LENGTH') {
                $server[$key] = implode(', ', $values);
            } else {
                $server['HTTP_' . $key] = implode(', ', $values);
            }
        }

        return $server;
    }

    /**
     * @param array<array-key, mixed> $server
     */
    protected function mapRequest(Request $request, array $server): ServerRequestInterface
    {
        $psr = $this->requestFactory->createServerRequest($request->method, $request->uri, $server)
            ->withProtocolVersion(self::protocolVersion($request->protocol))
            ->withCookieParams($request->cookies)
            ->withQueryParams($request->query)
            ->withUploadedFiles($this->wrapUploads($request->uploads));

        foreach ($request->attributes as $name => $value) {
            $psr = $psr->withAttribute((string) $name, $value);
        }
        foreach ($request->headers as $name => $values) {
            $psr = $psr->withHeader((string) $name, $values);
        }
        if ($request->parsed) {
            $psr = $psr->withParsedBody($request->parsedBody);
        }
        if ($request->body !== '') {
            $psr = $psr->withBody($this->streamFactory->createStream($request->body));
        }

        return $psr;
    }

    /**
     * Turn the uploads tree into UploadedFileInterface leaves (same tree shape).
     *
     * @param array<array-key, mixed> $files
     * @return array<array-key, mixed>
     */
    protected function wrapUploads(array $files): array
    {
        $result = [];
        foreach ($files as $index => $file) {
            if (!is_array($file)) {
                continue;
            }
            if (!isset($file['name'])) {
                $result[$index] = $this->wrapUploads($file);
                continue;
            }
            $error = (int) ($file['error'] ?? UPLOAD_ERR_NO_FILE);
            $stream = $error === UPLOAD_ERR_OK
                ? $this->streamFactory->createStreamFromFile((string) $file['tmpName'])
                : $this->streamFactory->createStream();
            $result[$index] = $this->uploadsFactory->createUploadedFile(
                $stream,
                (int) ($file['size'] ?? 0),
                $error,
                (string) $file['name'],
                (string) ($file['mime'] ?? ''),
            );
        }

        return $result;
    }

    /** `HTTP/2.0` => `2`, `HTTP/1.0` => `1.0`, `HTTP/1.1` => `1.1`, anything else => `1.1`. */
    private static function protocolVersion(string $protocol): string
    {
        $version = substr($protocol, 5);
        if ($version === '2.0') {
            return '2';
        }

        return in_array($version, ['1.0', '1.1', '2'], true) ? $version : '1.1';
    }

    /** @return \Generator<int, string> */
    private function chunks(StreamInterface $body): \Generator
    {
        if ($body->isSeekable()) {
            $body->rewind();
        }
        while (!$body->eof()) {
            $chunk = $body->read($this->chunkSize);
            if ($chunk === '') {
                break;
            }
            yield $chunk;
        }
    }
}
