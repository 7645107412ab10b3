<?php

declare(strict_types=1);

namespace App;

/**
 * The one place that chooses the worker library: the official spiral/roadrunner-worker
 * when it is installed (vendor/), otherwise the rr SDK (sdk/php). Both have the same shape:
 * Worker::create(), waitPayload(), respond(Payload), error(string), stop().
 */
final class WorkerFactory
{
    private const OFFICIAL_WORKER = 'Spiral\RoadRunner\Worker';
    private const OFFICIAL_PAYLOAD = 'Spiral\RoadRunner\Payload';

    /** Create the worker on the relay given by RR_RELAY. */
    public static function create(): object
    {
        $class = self::official() ? self::OFFICIAL_WORKER : \Rr\Worker::class;

        return $class::create();
    }

    /** Create a reply payload. */
    public static function payload(string $body, ?string $context = null): object
    {
        $class = self::official() ? self::OFFICIAL_PAYLOAD : \Rr\Payload::class;

        return new $class($body, $context);
    }

    /** Which library is in use, for log lines. */
    public static function library(): string
    {
        return self::official() ? 'spiral/roadrunner-worker' : 'rr/worker';
    }

    private static function official(): bool
    {
        return class_exists(self::OFFICIAL_WORKER);
    }
}
