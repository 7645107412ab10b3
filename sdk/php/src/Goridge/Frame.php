<?php

declare(strict_types=1);

namespace Rr\Goridge;

/**
 * One goridge frame (protocol version 1).
 *
 * Wire layout (all integers little-endian):
 *
 *   byte 0      0x10 | HL   (HL = header length in 32-bit words: 3 + number of options)
 *   byte 1      flags       (CONTROL, ERROR, CODEC_* bits)
 *   bytes 2..5  payload length (u32; options are not counted)
 *   bytes 6..9  CRC32 (IEEE) of bytes 0..5
 *   byte 10     stream byte (STREAM, STOP, PING, PONG bits)
 *   byte 11     reserved, 0
 *   then        options (u32 each, at most 10), then the payload
 */
final class Frame
{
    public const VERSION = 0x01;
    public const HEADER_SIZE = 12;
    public const MAX_OPTIONS = 10;

    /** Flags (byte 1). */
    public const CONTROL = 0x01;
    public const CODEC_RAW = 0x04;
    public const CODEC_JSON = 0x08;
    public const CODEC_MSGPACK = 0x10;
    public const CODEC_GOB = 0x20;
    public const ERROR = 0x40;
    public const CODEC_PROTO = 0x80;

    /** Stream byte (byte 10). */
    public const STREAM = 0x01;
    public const STOP = 0x02;
    public const PING = 0x04;
    public const PONG = 0x08;

    /**
     * @param string   $payload raw payload bytes
     * @param int[]    $options u32 option words (0..10)
     * @param int      $flags   byte 1
     * @param int      $stream  byte 10
     */
    public function __construct(
        public string $payload = '',
        public array $options = [],
        public int $flags = 0,
        public int $stream = 0,
        public int $reserved = 0,
    ) {
    }

    /** True when every bit of $flag is set in the flags byte. */
    public function hasFlag(int $flag): bool
    {
        return ($this->flags & $flag) === $flag;
    }

    /**
     * Serialise the frame to its wire form.
     *
     * @throws RelayException on too many options or out-of-range values
     */
    public function encode(): string
    {
        if (count($this->options) > self::MAX_OPTIONS) {
            throw new RelayException(sprintf('goridge: a frame carries at most %d options, got %d', self::MAX_OPTIONS, count($this->options)));
        }
        // One test for all three bytes (a negative one has high bits set too): this runs for
        // every frame sent.
        if ((($this->flags | $this->stream | $this->reserved) & ~0xFF) !== 0) {
            foreach ([$this->flags, $this->stream, $this->reserved] as $byte) {
                if ($byte < 0 || $byte > 0xFF) {
                    throw new RelayException("goridge: header byte out of range: $byte");
                }
            }
        }
        foreach ($this->options as $option) {
            if (!is_int($option) || $option < 0 || $option > 0xFFFFFFFF) {
                throw new RelayException('goridge: options must be unsigned 32-bit integers');
            }
        }

        $head = pack('CCV', (self::VERSION << 4) | (3 + count($this->options)), $this->flags, strlen($this->payload));

        return $head
            . pack('VCC', crc32($head), $this->stream, $this->reserved)
            . ($this->options === [] ? '' : pack('V*', ...$this->options))
            . $this->payload;
    }

    /**
     * Parse and validate a 12-byte header (CRC over bytes 0..5, version nibble).
     *
     * @return array{options:int, flags:int, length:int, stream:int, reserved:int} options = number of option words
     * @throws RelayException on a CRC mismatch or malformed header
     */
    public static function decodeHeader(string $header): array
    {
        if (strlen($header) !== self::HEADER_SIZE) {
            throw new RelayException(sprintf('goridge: frame header must be %d bytes, got %d', self::HEADER_SIZE, strlen($header)));
        }

        $h = unpack('Cb0/Cflags/Vlength/Vcrc/Cstream/Creserved', $header);
        $actual = crc32(substr($header, 0, 6));
        if ($h === false || $h['crc'] !== $actual) {
            throw new RelayException(sprintf(
                'goridge: CRC mismatch in frame header: expected 0x%08x (stored in bytes 6..9), actual 0x%08x (computed over bytes 0..5); header bytes: %s',
                $h['crc'],
                $actual,
                bin2hex($header),
            ));
        }
        if (($h['b0'] >> 4) !== self::VERSION) {
            throw new RelayException(sprintf('goridge: unsupported protocol version %d (byte 0 = 0x%02x)', $h['b0'] >> 4, $h['b0']));
        }
        $hl = $h['b0'] & 0x0F;
        if ($hl < 3) {
            throw new RelayException("goridge: invalid header length $hl words (minimum 3)");
        }

        return [
            'options' => $hl - 3,
            'flags' => $h['flags'],
            'length' => $h['length'],
            'stream' => $h['stream'],
            'reserved' => $h['reserved'],
        ];
    }

    /**
     * Build a frame from a decoded header and the bytes that follow it (options ++ payload).
     *
     * @param array{options:int, flags:int, length:int, stream:int, reserved:int} $header
     */
    public static function fromParts(array $header, string $rest): self
    {
        $optionBytes = $header['options'] * 4;
        if (strlen($rest) !== $optionBytes + $header['length']) {
            throw new RelayException(sprintf('goridge: expected %d bytes after the header, got %d', $optionBytes + $header['length'], strlen($rest)));
        }
        $options = $optionBytes === 0 ? [] : array_values(unpack('V*', substr($rest, 0, $optionBytes)));

        return new self(substr($rest, $optionBytes), $options, $header['flags'], $header['stream'], $header['reserved']);
    }

    /**
     * Decode one complete frame from a string (header, options and payload, nothing more).
     *
     * @throws RelayException on a CRC mismatch, truncated or oversized input
     */
    public static function decode(string $bytes): self
    {
        $header = self::decodeHeader(substr($bytes, 0, self::HEADER_SIZE));

        return self::fromParts($header, (string) substr($bytes, self::HEADER_SIZE));
    }
}
