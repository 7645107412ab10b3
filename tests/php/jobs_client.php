<?php

/**
 * Command-line producer for the Rust end-to-end tests, on the SDK's Rr\Jobs\Jobs.
 *
 *   php jobs_client.php <rpc-address> push <pipeline> <name> <payload> [priority] [delay] [header=value]
 *   php jobs_client.php <rpc-address> batch <pipeline> <name>:<payload>:<priority> ...
 *   php jobs_client.php <rpc-address> declare <name> <driver> [key=value ...]
 *   php jobs_client.php <rpc-address> pause|resume|destroy <pipeline> ...
 *   php jobs_client.php <rpc-address> list|stat
 *
 * Prints one line: `OK <result as JSON>`, or `ERR <message>` (exit 1).
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Jobs\Jobs;
use Rr\Jobs\Rpc;

[$self, $address, $command] = array_pad($argv, 3, '');
$args = array_slice($argv, 3);

try {
    $jobs = new Jobs(Rpc::connect($address));
    switch ($command) {
        case 'push':
            $options = ['priority' => (int) ($args[3] ?? 0), 'delay' => (int) ($args[4] ?? 0)];
            if (isset($args[5])) {
                [$k, $v] = explode('=', $args[5], 2);
                $options['headers'] = [$k => [$v]];
            }
            $result = $jobs->push($args[0], $args[1], $args[2], $options);
            break;
        case 'batch':
            $batch = [];
            foreach (array_slice($args, 1) as $spec) {
                [$name, $payload, $priority] = explode(':', $spec, 3);
                $batch[] = [$name, $payload, ['priority' => (int) $priority]];
            }
            $result = $jobs->pushBatch($args[0], $batch);
            break;
        case 'declare':
            $options = ['name' => $args[0], 'driver' => $args[1]];
            foreach (array_slice($args, 2) as $kv) {
                [$k, $v] = explode('=', $kv, 2);
                $options[$k] = $v;
            }
            $jobs->declare($options);
            $result = true;
            break;
        case 'pause':
            $jobs->pause(...$args);
            $result = true;
            break;
        case 'resume':
            $jobs->resume(...$args);
            $result = true;
            break;
        case 'destroy':
            $result = $jobs->destroy(...$args);
            break;
        case 'list':
            $result = $jobs->list();
            break;
        case 'stat':
            $result = $jobs->stat();
            break;
        default:
            throw new InvalidArgumentException("unknown command '$command'");
    }
    echo 'OK ', json_encode($result), "\n";
} catch (Throwable $e) {
    echo 'ERR ', $e->getMessage(), "\n";
    exit(1);
}
