<?php

declare(strict_types=1);

namespace Rr\Goridge;

/**
 * Relay over a pair of PHP streams (STDIN/STDOUT for `pipes`, or one socket stream used both ways).
 */
class StreamRelay implements RelayInterface
{
    /** @var resource */
    protected $in;

    /** @var resource */
    protected $out;

    /**
     * @param resource $in  readable stream (frames from the server)
     * @param resource $out writable stream (frames to the server)
     */
    public function __construct($in, $out)
    {
        if (!is_resource($in) || !is_resource($out)) {
            throw new RelayException('goridge: StreamRelay needs two open stream resources');
        }
        $this->in = $in;
        $this->out = $out;
    }

    /** @inheritDoc */
    public function send(Frame $frame): void
    {
        $data = $frame->encode();
        $total = strlen($data);
        for ($written = 0; $written < $total; $written += $n) {
            $n = @fwrite($this->out, $written === 0 ? $data : substr($data, $written));
            if ($n === false || $n === 0) {
                throw new RelayException(sprintf('goridge: write failed after %d of %d bytes: %s', $written, $total, self::lastError()));
            }
        }
        fflush($this->out);
    }

    /** @inheritDoc */
    public function waitFrame(): Frame
    {
        $header = Frame::decodeHeader($this->readExactly(Frame::HEADER_SIZE, 'frame header'));

        return Frame::fromParts($header, $this->readExactly($header['options'] * 4 + $header['length'], 'frame body'));
    }

    /**
     * Whether a frame (or its first bytes) can be read now without blocking. Used to notice
     * a stream STOP from the server while the worker is sending a streamed response.
     */
    public function hasFrame(): bool
    {
        $meta = stream_get_meta_data($this->in);
        if (($meta['unread_bytes'] ?? 0) > 0) {
            return true;
        }
        if (in_array($meta['stream_type'] ?? '', ['MEMORY', 'TEMP'], true)) {
            $stat = fstat($this->in);
            $pos = ftell($this->in);

            return $stat !== false && $pos !== false && $pos < $stat['size'];
        }
        $read = [$this->in];
        $write = $except = null;
        $ready = @stream_select($read, $write, $except, 0, 0);

        return $ready !== false && $ready > 0;
    }

    /**
     * Read exactly $length bytes, looping over short reads; EOF before that is an error.
     */
    protected function readExactly(int $length, string $what): string
    {
        // The usual case: one fread has it all (the stream buffers the pipe).
        $buffer = $length > 0 ? @fread($this->in, min($length, 1 << 20)) : '';
        if ($buffer === false) {
            throw new RelayException(sprintf('goridge: read error in %s: %s', $what, self::lastError()));
        }
        if (strlen($buffer) === $length) {
            return $buffer;
        }
        while (($missing = $length - strlen($buffer)) > 0) {
            $chunk = @fread($this->in, min($missing, 1 << 20));
            if ($chunk === false) {
                throw new RelayException(sprintf('goridge: read error in %s: %s', $what, self::lastError()));
            }
            if ($chunk === '') {
                if (feof($this->in)) {
                    throw new RelayException(sprintf('goridge: unexpected EOF: relay closed while reading %s (%d of %d bytes received)', $what, strlen($buffer), $length));
                }
                continue; // read timeout or interrupted call on a blocking stream: wait again
            }
            $buffer .= $chunk;
        }

        return $buffer;
    }

    private static function lastError(): string
    {
        return error_get_last()['message'] ?? 'unknown error';
    }
}
