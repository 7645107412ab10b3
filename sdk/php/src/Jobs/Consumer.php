<?php

declare(strict_types=1);

namespace Rr\Jobs;

use Rr\Worker;

/**
 * The worker loop of a `RR_MODE=jobs` worker.
 *
 *     $consumer = new Consumer();
 *     while ($task = $consumer->waitTask()) {
 *         handle($task->name, $task->payload);
 *         $task->ack();
 *     }
 */
final class Consumer
{
    private readonly Worker $worker;

    public function __construct(?Worker $worker = null)
    {
        $this->worker = $worker ?? Worker::create();
    }

    public function getWorker(): Worker
    {
        return $this->worker;
    }

    /**
     * The next task, or null when the server stops the worker.
     *
     * @throws JobsException when the payload has no valid job context
     */
    public function waitTask(): ?Task
    {
        $payload = $this->worker->waitPayload();
        if ($payload === null) {
            return null;
        }
        $context = $payload->header === '' ? null : json_decode($payload->header, true);
        if (!is_array($context) || !isset($context['id'])) {
            throw new JobsException('Task payload does not have a valid header.');
        }
        $headers = [];
        foreach (is_array($context['headers'] ?? null) ? $context['headers'] : [] as $k => $v) {
            $headers[(string) $k] = array_map('strval', (array) $v);
        }

        return new Task(
            $this->worker,
            (string) $context['id'],
            (string) ($context['job'] ?? ''),
            (string) ($context['pipeline'] ?? ''),
            (string) ($context['driver'] ?? 'unknown'),
            (string) ($context['queue'] ?? ''),
            $headers,
            $payload->body,
        );
    }
}
