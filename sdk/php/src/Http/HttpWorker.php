<?php

declare(strict_types=1);

namespace Rr\Http;

use Rr\Goridge\Frame;
use Rr\Http\Exception\StreamStoppedException;
use Rr\Payload;
use Rr\Worker;

/**
 * HTTP worker loop on top of {@see Worker}: decodes the http plugin's request payload and
 * encodes the response.
 *
 *     $http = HttpWorker::create();
 *     while ($req = $http->waitRequest()) {
 *         $http->respond(200, "hello {$req->method} {$req->uri}", ['Content-Type' => 'text/plain']);
 *     }
 *
 * Wire format: the request context is a protobuf `http.v1.Request` (RoadRunner >= 2024.1) and
 * the reply context a protobuf `http.v1.Response` sent with the PROTO codec flag. A request
 * whose context is JSON (the legacy format of RoadRunner <= 2023.3) is answered in JSON with
 * the JSON codec flag, so one worker serves both generations of servers.
 */
final class HttpWorker
{
    /** Codec of the request being served: Frame::CODEC_PROTO or Frame::CODEC_JSON. */
    private int $codec = Frame::CODEC_PROTO;

    /**
     * The last reply head encoded, as [status, codec, normalized headers, bytes, whether the
     * headers were given as plain string lists, the headers as given]: a worker mostly answers
     * with the same status and headers, and then the bytes are reused.
     *
     * @var array{0:int, 1:int, 2:array<string, list<string>>, 3:string, 4:bool, 5:array<array-key, mixed>}|null
     */
    private ?array $lastHead = null;

    /**
     * @param Worker $worker the goridge worker to read requests from
     */
    public function __construct(private readonly Worker $worker)
    {
    }

    /** A worker on the relay named by `RR_RELAY` (see {@see Worker::create()}). */
    public static function create(bool $interceptSideEffects = true): self
    {
        return new self(Worker::create($interceptSideEffects));
    }

    /** The underlying goridge worker (for error() and stop()). */
    public function getWorker(): Worker
    {
        return $this->worker;
    }

    /**
     * Block until the next request.
     *
     * @return Request|null null when the server asks the worker to stop (or sends an empty payload)
     * @throws \Rr\Goridge\RelayException on relay failures
     * @throws \UnexpectedValueException|\JsonException when the request context cannot be decoded
     */
    public function waitRequest(): ?Request
    {
        $payload = $this->worker->waitPayload();
        if ($payload === null || ($payload->header === '' && $payload->body === '')) {
            return null;
        }

        return self::decodeRequest($payload, $this->codec);
    }

    /**
     * Build a {@see Request} from a payload; sets $codec to the codec the reply must use.
     *
     * @throws \UnexpectedValueException|\JsonException
     */
    public static function decodeRequest(Payload $payload, ?int &$codec = null): Request
    {
        if (str_starts_with(ltrim($payload->header), '{')) {
            // Legacy JSON context. A protobuf Request never starts with '{' (0x7b would be
            // field 15 with the group wire type, which proto3 messages do not use).
            $codec = Frame::CODEC_JSON;
            $c = json_decode($payload->header, true, 512, JSON_THROW_ON_ERROR);
            $parsed = (bool) ($c['parsed'] ?? false);
            $headers = [];
            foreach ((array) ($c['headers'] ?? []) as $name => $values) {
                if (is_string($name) && $name !== '') {
                    $headers[$name] = array_values(array_map('strval', (array) $values));
                }
            }
            $cookies = array_map(static fn ($v): string => is_array($v) ? implode(',', $v) : (string) $v, (array) ($c['cookies'] ?? []));
            $attributes = (array) ($c['attributes'] ?? []);
            $uploads = (array) ($c['uploads'] ?? []);
            $rawQuery = (string) ($c['rawQuery'] ?? '');
            $fields = [(string) ($c['remoteAddr'] ?? ''), (string) ($c['protocol'] ?? ''), (string) ($c['method'] ?? ''), (string) ($c['uri'] ?? '')];
        } else {
            $codec = Frame::CODEC_PROTO;
            $m = Proto::decodeRequest($payload->header);
            $parsed = $m['parsed'];
            // The empty-handed cases are skipped in line: this runs for every request.
            $headers = $m['headers'];
            unset($headers['']);
            $cookies = $m['cookies'] === [] ? [] : array_map(static fn (array $v): string => implode(',', $v), $m['cookies']);
            $attributes = $m['attributes'] === [] ? [] : array_map(static fn (array $v): ?string => $v[0] ?? null, $m['attributes']);
            $uploads = $m['uploads'] === '' ? [] : (array) json_decode($m['uploads'], true, 512, JSON_THROW_ON_ERROR);
            $rawQuery = $m['rawQuery'];
            $fields = [$m['remoteAddr'], $m['protocol'], $m['method'], $m['uri']];
        }
        $query = [];
        if ($rawQuery !== '') {
            parse_str($rawQuery, $query);
        }

        return new Request(
            remoteAddr: $fields[0],
            protocol: $fields[1],
            method: $fields[2],
            uri: $fields[3],
            headers: $headers,
            cookies: $cookies,
            uploads: $uploads,
            attributes: [Request::PARSED_BODY_ATTRIBUTE_NAME => $parsed] + $attributes,
            query: $query,
            // As roadrunner-php/http: a parsed request with an empty body carries the empty tree "[]".
            body: $parsed && $payload->body === '' ? '[]' : $payload->body,
            parsed: $parsed,
            rawQuery: $rawQuery,
        );
    }

    /**
     * Send the response to the current request. Same signature as roadrunner-php/http's
     * `HttpWorker::respond()`.
     *
     * @param int                                $status      HTTP status (100..599); a 1xx status (e.g. 103 Early
     *                                                        Hints) goes without a body and with $endOfStream false,
     *                                                        and the final respond() follows
     * @param string|\Generator                  $body        response body; a Generator is streamed (see respondStream())
     * @param array<string, string|list<string>> $headers     name => value or list of values
     * @param bool                               $endOfStream false sends this body as one chunk of a streamed response:
     *                                                        more respond() calls follow, the last with true
     * @throws \InvalidArgumentException when a 1xx status comes with a body
     * @throws \Rr\Goridge\RelayException
     */
    public function respond(int $status, string|\Generator $body = '', array $headers = [], bool $endOfStream = true): void
    {
        if ($status >= 100 && $status < 200 && $body !== '') {
            throw new \InvalidArgumentException('Unable to send a body with informational status code.');
        }
        if ($body instanceof \Generator) {
            $this->respondStream($status, $body, $headers, $endOfStream);

            return;
        }
        $this->worker->respond(new Payload($body, $this->head($status, $headers), $endOfStream), $this->codec);
    }

    /**
     * Stream the response: every chunk is sent as its own frame and written to the client as
     * it comes. A Generator's return value, if any, is sent as the last chunk.
     *
     * If the client goes away, the server sends a stream STOP: a Generator then gets a
     * {@see StreamStoppedException} thrown in at its current `yield` (it may catch it to clean up),
     * the stream is closed and false is returned. An exception thrown by the generator also
     * closes the stream (the client gets what was sent so far) and is reported on STDERR;
     * do not respond() again for this request in either case.
     *
     * @param iterable<string|\Stringable> $chunks
     * @param array<string, string|list<string>> $headers
     * @param bool $endOfStream false leaves the stream open after the last chunk (more respond() calls follow)
     * @return bool true when the whole response was sent, false when it was cut short
     * @throws \Rr\Goridge\RelayException
     */
    public function respondStream(int $status, iterable $chunks, array $headers = [], bool $endOfStream = true): bool
    {
        // Status and headers travel with every frame (as roadrunner-php/http does in proto mode);
        // the server uses the first ones.
        $head = $this->head($status, $headers);
        $send = fn (string $body, bool $eos) => $this->worker->respond(new Payload($body, $head, $eos), $this->codec);

        try {
            foreach ($chunks as $chunk) {
                if ($this->worker->receivedStreamStop()) {
                    if ($chunks instanceof \Generator) {
                        try {
                            $chunks->throw(new StreamStoppedException('the server stopped the stream (client gone)'));
                        } catch (StreamStoppedException) {
                        }
                    }
                    $send('', true);

                    return false;
                }
                $send((string) $chunk, false);
            }
        } catch (\Rr\Goridge\RelayException $e) {
            throw $e; // the relay is broken: nothing more can be sent
        } catch (\Throwable $e) {
            fwrite(STDERR, sprintf("rr: response stream aborted by %s: %s\n", $e::class, $e->getMessage()));
            $send('', true);

            return false;
        }
        $last = $chunks instanceof \Generator ? (string) $chunks->getReturn() : '';
        if ($endOfStream || $last !== '') {
            $send($last, $endOfStream);
        }

        return true;
    }

    /**
     * @param array<array-key, string|list<string>> $headers
     */
    private function head(int $status, array $headers): string
    {
        $last = $this->lastHead;
        // The same headers as last time, given as plain strings (so nothing can stringify
        // differently): the encoded head is reused without normalizing them again.
        if ($last !== null && $last[4] && $last[0] === $status && $last[1] === $this->codec && $last[5] === $headers) {
            return $last[3];
        }
        $normalized = [];
        $plain = true;
        foreach ($headers as $name => $values) {
            $given = is_array($values) ? $values : [$values];
            $list = array_values(array_map('strval', $given));
            $plain = $plain && $list === $given;
            $normalized[(string) $name] = $list;
        }
        if ($last !== null && $last[0] === $status && $last[1] === $this->codec && $last[2] === $normalized) {
            $head = $last[3];
        } else {
            $head = $this->codec === Frame::CODEC_JSON
                ? json_encode(['status' => $status, 'headers' => $normalized ?: new \stdClass()], JSON_THROW_ON_ERROR)
                : Proto::encodeResponse($status, $normalized);
        }
        $this->lastHead = [$status, $this->codec, $normalized, $head, $plain, $headers];

        return $head;
    }
}
