<?php

declare(strict_types=1);

namespace Rr\Jobs;

use Rr\Payload;
use Rr\Worker;

/**
 * A job received by a `RR_MODE=jobs` worker. Answer it exactly once: ack(), nack() or requeue().
 * Not answering (or an empty reply) also counts as ack on the server.
 */
final class Task
{
    private bool $answered = false;

    /**
     * @param array<string, string[]> $headers
     */
    public function __construct(
        private readonly Worker $worker,
        public readonly string $id,
        public readonly string $name,
        public readonly string $pipeline,
        public readonly string $driver,
        public readonly string $queue,
        public readonly array $headers,
        public readonly string $payload,
    ) {
    }

    /** The first value of a header, or null. */
    public function getHeader(string $name): ?string
    {
        return isset($this->headers[$name][0]) ? (string) $this->headers[$name][0] : null;
    }

    public function hasHeader(string $name): bool
    {
        return isset($this->headers[$name]);
    }

    /** The payload decoded as JSON. @throws \JsonException */
    public function json(): mixed
    {
        return json_decode($this->payload, true, 512, JSON_THROW_ON_ERROR);
    }

    public function isAnswered(): bool
    {
        return $this->answered;
    }

    /** Done: the driver removes the job. */
    public function ack(): void
    {
        $this->reply(['type' => 2, 'data' => new \stdClass()]);
    }

    /**
     * Failed: dropped, or with $redelivery delivered again after $delay seconds.
     */
    public function nack(string|\Throwable $message, bool $redelivery = false, int $delay = 0): void
    {
        $this->reply(['type' => 3, 'data' => [
            'message' => $message instanceof \Throwable ? $message->getMessage() : $message,
            'requeue' => $redelivery,
            'delay_seconds' => $delay,
        ]]);
    }

    /**
     * Deliver again after $delay seconds, with $headers merged into the job's.
     *
     * @param array<string, string|string[]> $headers
     */
    public function requeue(int $delay = 0, array $headers = [], string $message = ''): void
    {
        $normalized = [];
        foreach ($headers as $k => $v) {
            $normalized[(string) $k] = array_map('strval', (array) $v);
        }
        $this->reply(['type' => 4, 'data' => [
            'message' => $message,
            'delay_seconds' => $delay,
            'headers' => (object) $normalized,
        ]]);
    }

    private function reply(array $reply): void
    {
        if ($this->answered) {
            throw new JobsException("task {$this->id} was already answered");
        }
        $this->answered = true;
        $this->worker->respond(new Payload(json_encode($reply, JSON_THROW_ON_ERROR)));
    }
}
