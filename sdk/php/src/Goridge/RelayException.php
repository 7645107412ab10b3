<?php

declare(strict_types=1);

namespace Rr\Goridge;

/**
 * Transport or framing failure: EOF, I/O error, CRC mismatch, malformed frame, bad relay address.
 */
class RelayException extends \RuntimeException
{
}
