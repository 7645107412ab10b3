<?php

declare(strict_types=1);

namespace App;

/**
 * Handles the ticker plugin's payloads: body {"tick": N}, context {"lastTick": <unix seconds>}.
 */
final class TickerDispatcher implements DispatcherInterface
{
    public function __construct(
        private readonly Finalizer $finalizer,
        private readonly string $logFile,
    ) {
    }

    public function canServe(): bool
    {
        return getenv('RR_MODE') === 'ticker';
    }

    public function serve(): void
    {
        $worker = WorkerFactory::create();
        fwrite(STDERR, sprintf("ticker worker pid %d ready (%s)\n", getmypid(), WorkerFactory::library()));

        while ($payload = $worker->waitPayload()) {
            $body = json_decode($payload->body, true);
            $context = json_decode($payload->header !== '' ? $payload->header : '{}', true);

            $this->handleTick(
                is_array($body) ? (int) ($body['tick'] ?? -1) : -1,
                is_array($context) && is_numeric($context['lastTick'] ?? null) ? (int) $context['lastTick'] : null,
            );

            $worker->respond(WorkerFactory::payload('OK'));

            // Reset stateful services before the next tick.
            $this->finalizer->finalize();
        }
    }

    private function handleTick(int $tick, ?int $lastTick): void
    {
        // The first tick has no predecessor (Go sends its zero time, -62135596800).
        $last = $lastTick !== null && $lastTick > 0 ? (string) $lastTick : 'never';
        $line = sprintf('tick #%d (last tick at %s) handled by pid %d', $tick, $last, getmypid());

        fwrite(STDERR, $line . "\n");
        file_put_contents($this->logFile, date('c') . ' ' . $line . "\n", FILE_APPEND | LOCK_EX);
    }
}
