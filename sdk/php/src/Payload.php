<?php

declare(strict_types=1);

namespace Rr;

/**
 * One unit of work exchanged with the server: a body plus a context ("header", usually JSON).
 */
final class Payload
{
    /** Payload body (binary). */
    public readonly string $body;

    /** Payload context (binary, usually JSON). */
    public readonly string $header;

    /**
     * @param string|null $body   body bytes (null = empty)
     * @param string|null $header context bytes (null = empty)
     * @param bool        $eos    end of stream: false marks a streamed chunk that more chunks follow
     */
    public function __construct(?string $body = null, ?string $header = null, public readonly bool $eos = true)
    {
        $this->body = $body ?? '';
        $this->header = $header ?? '';
    }

    /**
     * The context decoded as a JSON object/array; an empty context gives [].
     *
     * @return array<array-key, mixed>
     * @throws \JsonException when the context is not a JSON object or array
     */
    public function getContext(): array
    {
        if ($this->header === '') {
            return [];
        }
        $context = json_decode($this->header, true, 512, JSON_THROW_ON_ERROR);
        if (!is_array($context)) {
            throw new \JsonException('payload context is not a JSON object or array');
        }

        return $context;
    }
}
