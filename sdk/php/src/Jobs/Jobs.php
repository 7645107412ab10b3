<?php

declare(strict_types=1);

namespace Rr\Jobs;

/**
 * Producer and pipeline management over the `jobs` RPC service (RoadRunner's jobs.v1 protobuf API).
 *
 *     $jobs = new Jobs();                       // RR_RPC, else tcp://127.0.0.1:6001
 *     $id = $jobs->push('emails', 'App\\Mail', '{"to":"a@b.c"}', ['priority' => 1, 'delay' => 5]);
 */
final class Jobs
{
    private readonly Rpc $rpc;

    public function __construct(?Rpc $rpc = null)
    {
        $this->rpc = $rpc ?? Rpc::connect();
    }

    /**
     * Push one job; returns its id.
     *
     * @param array{id?: string, priority?: int, delay?: int, headers?: array<string, string|string[]>, auto_ack?: bool} $options
     *        priority 0 (default) takes the pipeline's; delay in seconds
     * @throws JobsException
     */
    public function push(string $pipeline, string $name, string $payload, array $options = []): string
    {
        [$id, $job] = self::encode($pipeline, $name, $payload, $options);
        $this->rpc->call('jobs.Push', Proto::bytes(1, $job));

        return $id;
    }

    /**
     * Push several jobs: each is [name, payload, options]. Stops at the first failure.
     *
     * @param list<array{0: string, 1: string, 2?: array}> $jobs
     * @return string[] the ids
     * @throws JobsException
     */
    public function pushBatch(string $pipeline, array $jobs): array
    {
        $ids = [];
        $body = '';
        foreach ($jobs as $job) {
            [$id, $encoded] = self::encode($pipeline, $job[0], $job[1], $job[2] ?? []);
            $ids[] = $id;
            $body .= Proto::bytes(1, $encoded);
        }
        $this->rpc->call('jobs.PushBatch', $body);

        return $ids;
    }

    /** Stop consuming (pushing still works). @throws JobsException */
    public function pause(string ...$pipelines): void
    {
        $this->rpc->call('jobs.Pause', Proto::pipelines($pipelines));
    }

    /** Consume again. @throws JobsException */
    public function resume(string ...$pipelines): void
    {
        $this->rpc->call('jobs.Resume', Proto::pipelines($pipelines));
    }

    /** @return string[] every pipeline's name @throws JobsException */
    public function list(): array
    {
        return array_map('strval', Proto::fields($this->rpc->call('jobs.List', ''))[1] ?? []);
    }

    /**
     * Create a pipeline: ['driver' => 'memory', 'name' => 'p', 'priority' => '10', ...driver options].
     *
     * @param array<string, string|int|bool> $options
     * @throws JobsException
     */
    public function declare(array $options): void
    {
        $map = [];
        foreach ($options as $k => $v) {
            $map[$k] = is_bool($v) ? ($v ? 'true' : 'false') : (string) $v;
        }
        $this->rpc->call('jobs.Declare', Proto::declare($map));
    }

    /** Stop and remove pipelines. @return string[] the destroyed names @throws JobsException */
    public function destroy(string ...$pipelines): array
    {
        return array_map('strval', Proto::fields($this->rpc->call('jobs.Destroy', Proto::pipelines($pipelines)))[1] ?? []);
    }

    /**
     * Every pipeline's state.
     *
     * @return list<array{pipeline: string, driver: string, queue: string, active: int, delayed: int, reserved: int, ready: bool, priority: int}>
     * @throws JobsException
     */
    public function stat(): array
    {
        $stats = [];
        foreach (Proto::fields($this->rpc->call('jobs.Stat', ''))[1] ?? [] as $encoded) {
            $f = Proto::fields((string) $encoded);
            $stats[] = [
                'pipeline' => (string) ($f[1][0] ?? ''),
                'driver' => (string) ($f[2][0] ?? ''),
                'queue' => (string) ($f[3][0] ?? ''),
                'active' => (int) ($f[4][0] ?? 0),
                'delayed' => (int) ($f[5][0] ?? 0),
                'reserved' => (int) ($f[6][0] ?? 0),
                'ready' => (bool) ($f[7][0] ?? false),
                'priority' => (int) ($f[8][0] ?? 0),
            ];
        }

        return $stats;
    }

    /** A random UUID v4, like the official client's job ids. */
    public static function uuid(): string
    {
        $b = random_bytes(16);
        $b[6] = chr((ord($b[6]) & 0x0f) | 0x40);
        $b[8] = chr((ord($b[8]) & 0x3f) | 0x80);

        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($b), 4));
    }

    /** @return array{0: string, 1: string} id and encoded jobs.v1.Job */
    private static function encode(string $pipeline, string $name, string $payload, array $options): array
    {
        $id = (string) ($options['id'] ?? self::uuid());
        $headers = [];
        foreach ($options['headers'] ?? [] as $k => $v) {
            $headers[(string) $k] = array_map('strval', (array) $v);
        }

        return [$id, Proto::job(
            $id,
            $name,
            $payload,
            $headers,
            $pipeline,
            (int) ($options['priority'] ?? 0),
            (int) ($options['delay'] ?? 0),
            (bool) ($options['auto_ack'] ?? false),
        )];
    }
}
