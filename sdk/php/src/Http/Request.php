<?php

declare(strict_types=1);

namespace Rr\Http;

/**
 * One HTTP request as the http plugin hands it to a worker. Immutable.
 *
 * The shape follows `Spiral\RoadRunner\Http\Request` (roadrunner-php/http), plus
 * `rawQuery` and `parsedBody`.
 */
final class Request
{
    /** Attribute that carries the `parsed` flag, as in roadrunner-php/http. */
    public const PARSED_BODY_ATTRIBUTE_NAME = 'rr_parsed_body';

    /** The parsed form tree when {@see $parsed} is true, else null. */
    public readonly ?array $parsedBody;

    /**
     * @param string                        $remoteAddr client IP without port
     * @param string                        $protocol   `HTTP/1.1`, `HTTP/2.0`, ...
     * @param string                        $method     as received
     * @param string                        $uri        absolute URI: scheme://host/path?query
     * @param array<string, list<string>>   $headers    canonical name => values (no `Host`: it is in the URI)
     * @param array<string, string>         $cookies    name => value (several values comma-joined)
     * @param array<array-key, mixed>       $uploads    tree of `{name, mime, size, error, tmpName}` leaves
     * @param array<string, mixed>          $attributes middleware attributes (first value each) + `rr_parsed_body`
     * @param array<array-key, mixed>       $query      `parse_str($rawQuery)`
     * @param string                        $body       raw body, or the JSON form tree when $parsed
     *                                                  (`[]` for an empty tree, as roadrunner-php/http)
     * @param bool                          $parsed     whether the server parsed a urlencoded/multipart body
     * @param string                        $rawQuery   undecoded query string
     * @throws \JsonException when $parsed and the body is not a JSON object
     */
    public function __construct(
        public readonly string $remoteAddr = '127.0.0.1',
        public readonly string $protocol = 'HTTP/1.1',
        public readonly string $method = 'GET',
        public readonly string $uri = 'http://localhost',
        public readonly array $headers = [],
        public readonly array $cookies = [],
        public readonly array $uploads = [],
        public readonly array $attributes = [],
        public readonly array $query = [],
        public readonly string $body = '',
        public readonly bool $parsed = false,
        public readonly string $rawQuery = '',
    ) {
        $this->parsedBody = $parsed
            ? (array) ($body === '' ? [] : json_decode($body, true, 512, JSON_THROW_ON_ERROR))
            : null;
    }

    /** The client address: the `ipAddress` attribute when a middleware set one, else {@see $remoteAddr}. */
    public function getRemoteAddr(): string
    {
        return (string) ($this->attributes['ipAddress'] ?? $this->remoteAddr);
    }

    /** The parsed form tree, or null when the body was not parsed (as in roadrunner-php/http). */
    public function getParsedBody(): ?array
    {
        return $this->parsedBody;
    }

    /** All values of a header, matched case-insensitively. @return list<string> */
    public function getHeader(string $name): array
    {
        if (isset($this->headers[$name])) {
            return $this->headers[$name];
        }
        foreach ($this->headers as $key => $values) {
            if (strcasecmp((string) $key, $name) === 0) {
                return $values;
            }
        }

        return [];
    }

    /** The values of a header joined with ", ", '' when absent. */
    public function getHeaderLine(string $name): string
    {
        return implode(', ', $this->getHeader($name));
    }
}
