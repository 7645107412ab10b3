<?php

/**
 * Protobuf interop check for the Rust tests: the SDK's hand-written jobs.v1 codec.
 *
 *   php jobs_proto.php push            prints the hex of a PushRequest (negative priority,
 *                                      headers, delay, auto_ack, binary payload)
 *   php jobs_proto.php stats <hex>     decodes a Stats message with Rr\Jobs\Jobs::stat()'s
 *                                      reader and prints it as JSON
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Jobs\Proto;

switch ($argv[1] ?? '') {
    case 'push':
        $job = Proto::job('id-1', 'App\\Job', "bin\x00\xff", ['a' => ['1', '2'], 'b' => ['x']], 'pipe', -3, 7, true);
        echo bin2hex(Proto::bytes(1, $job)), "\n";
        break;
    case 'stats':
        $out = [];
        foreach (Proto::fields((string) hex2bin($argv[2])) [1] ?? [] as $stat) {
            $f = Proto::fields((string) $stat);
            $out[] = [$f[1][0] ?? '', $f[4][0] ?? 0, $f[5][0] ?? 0, (bool) ($f[7][0] ?? false), $f[8][0] ?? 0];
        }
        echo json_encode($out), "\n";
        break;
    default:
        fwrite(STDERR, "usage: php jobs_proto.php push|stats <hex>\n");
        exit(2);
}
