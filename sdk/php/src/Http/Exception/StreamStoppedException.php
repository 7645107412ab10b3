<?php

declare(strict_types=1);

namespace Rr\Http\Exception;

/**
 * Thrown into a response generator when the client went away and the server stopped the stream.
 */
final class StreamStoppedException extends \RuntimeException
{
}
