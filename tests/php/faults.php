<?php

/**
 * A worker that breaks the protocol on request, for the Rust end-to-end fault
 * tests. It answers "OK" to every payload, except when the body is one of:
 *
 *   crc   a reply frame whose header CRC is wrong
 *   huge  a reply header announcing a 4 GiB payload (valid CRC), then silence
 *   half  a reply header announcing 100 bytes, 10 of them, then exit (pipe closed mid-frame)
 *
 * With FAULT_IGNORE_STOP=1 it ignores the server's stop command and sleeps on.
 * Schedule payloads carry the fault in their body (a schedule's `body:`).
 *
 * STDERR events: READY pid=P | FAULT kind=K pid=P | IGNORING_STOP pid=P | STOPPED pid=P
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Payload;
use Rr\Worker;

$pid = getmypid();
$worker = Worker::create();
fwrite(STDERR, "READY pid=$pid\n");

/** A raw frame header: version 1, 3 words, flags, length, CRC over the first 6 bytes. */
function frame_header(int $flags, int $length, bool $badCrc = false): string
{
    $head = pack('CCV', (1 << 4) | 3, $flags, $length);
    $crc = crc32($head);
    if ($badCrc) {
        $crc ^= 0x5A5A5A5A;
    }

    return $head . pack('VCC', $crc, 0, 0);
}

const FLAG_RAW = 4;

while (true) {
    $payload = $worker->waitPayload();
    if ($payload === null) {
        if (getenv('FAULT_IGNORE_STOP') === '1') {
            fwrite(STDERR, "IGNORING_STOP pid=$pid\n");
            while (true) {
                sleep(1);
            }
        }
        fwrite(STDERR, "STOPPED pid=$pid\n");
        exit(0);
    }
    $kind = trim($payload->body);
    if (in_array($kind, ['crc', 'huge', 'half'], true)) {
        fwrite(STDERR, "FAULT kind=$kind pid=$pid\n");
    }
    switch ($kind) {
        case 'crc':
            fwrite(STDOUT, frame_header(FLAG_RAW, 2, true) . 'OK');
            fflush(STDOUT);
            break;
        case 'huge':
            fwrite(STDOUT, frame_header(FLAG_RAW, 0xFFFFFFFF));
            fflush(STDOUT);
            while (true) {
                sleep(1);
            }
        case 'half':
            fwrite(STDOUT, frame_header(FLAG_RAW, 100) . str_repeat('x', 10));
            fflush(STDOUT);
            exit(0);
        default:
            $worker->respond(new Payload('OK'));
    }
}
