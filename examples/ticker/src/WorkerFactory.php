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
    private const OFFICIAL_HTTP_WORKER = 'Spiral\RoadRunner\Http\HttpWorker';

    /** Create the worker on the relay given by RR_RELAY. */
    public static function create(): object
    {
        $class = self::official() ? self::OFFICIAL_WORKER : \Rr\Worker::class;

        return $class::create();
    }

    /**
     * Create an HTTP worker: Spiral\RoadRunner\Http\HttpWorker (spiral/roadrunner-http) or
     * Rr\Http\HttpWorker. Both have waitRequest() (a request with public method, uri, query,
     * headers, body, parsed ... properties) and respond(int $status, string $body, array $headers).
     */
    public static function http(): object
    {
        if (class_exists(self::OFFICIAL_HTTP_WORKER)) {
            $class = self::OFFICIAL_HTTP_WORKER;

            return new $class(self::create());
        }

        return new \Rr\Http\HttpWorker(\Rr\Worker::create());
    }

    /** Which HTTP library is in use, for log lines. */
    public static function httpLibrary(): string
    {
        return class_exists(self::OFFICIAL_HTTP_WORKER) ? 'spiral/roadrunner-http' : 'rr/worker';
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
