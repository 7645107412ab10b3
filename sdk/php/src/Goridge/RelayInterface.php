<?php

declare(strict_types=1);

namespace Rr\Goridge;

/**
 * A bidirectional goridge frame channel between a worker and the server.
 */
interface RelayInterface
{
    /**
     * Write one frame completely.
     *
     * @throws RelayException
     */
    public function send(Frame $frame): void;

    /**
     * Block until one complete frame has been read.
     *
     * @throws RelayException on EOF, I/O error or an invalid frame
     */
    public function waitFrame(): Frame;
}
