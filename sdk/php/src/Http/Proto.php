<?php

declare(strict_types=1);

namespace Rr\Http;

/**
 * A minimal protobuf (proto3) codec for exactly the two messages of the http plugin,
 * package `http.v1` (roadrunner-server/api `http/v1/http.proto`):
 *
 *     message HeaderValue { repeated bytes value = 1; }
 *     message Request {
 *         string remote_addr = 1;  string protocol = 2;  string method = 3;  string uri = 4;
 *         map<string, HeaderValue> header = 5;  map<string, HeaderValue> cookies = 6;
 *         string raw_query = 7;  bool parsed = 8;  bytes uploads = 9;
 *         map<string, HeaderValue> attributes = 10;
 *     }
 *     message Response { int64 status = 1; map<string, HeaderValue> headers = 2; }
 *
 * A map field is a repeated entry message `{ string key = 1; HeaderValue value = 2; }`.
 * In PHP a map is `array<string, list<string>>`. Unknown fields are skipped (forward
 * compatible); a repeated scalar field keeps the last value, map entries with the same
 * key keep the last entry, as protobuf says. Fields holding their default are not written.
 *
 * @internal used by {@see HttpWorker}; the array shapes below are the public contract of
 *           {@see decodeRequest()} / {@see encodeResponse()} for tests and tools.
 */
final class Proto
{
    private const VARINT = 0;
    private const I64 = 1;
    private const LEN = 2;
    private const SGROUP = 3;
    private const EGROUP = 4;
    private const I32 = 5;

    /** Request field number => array key, by wire type. */
    private const REQUEST_STRINGS = [1 => 'remoteAddr', 2 => 'protocol', 3 => 'method', 4 => 'uri', 7 => 'rawQuery', 9 => 'uploads'];
    private const REQUEST_MAPS = [5 => 'headers', 6 => 'cookies', 10 => 'attributes'];

    /**
     * Encode an unsigned (two's complement for negatives, 10 bytes) base-128 varint.
     */
    public static function varint(int $value): string
    {
        $out = '';
        for ($i = 0; $i < 10; $i++) {
            $byte = $value & 0x7F;
            // logical shift right by 7: arithmetic shift, then clear the 7 sign-extended bits
            $value = ($value >> 7) & 0x01FFFFFFFFFFFFFF;
            if ($value === 0) {
                return $out . chr($byte);
            }
            $out .= chr($byte | 0x80);
        }

        return $out;
    }

    /**
     * Decode a varint at $pos (advanced past it). 64-bit values wrap into PHP's signed int.
     *
     * @throws \UnexpectedValueException on truncated or over-long input
     */
    public static function readVarint(string $bytes, int &$pos): int
    {
        $result = 0;
        $length = strlen($bytes);
        for ($shift = 0; $shift < 70; $shift += 7) {
            if ($pos >= $length) {
                throw new \UnexpectedValueException('protobuf: truncated varint at byte ' . $pos);
            }
            $byte = ord($bytes[$pos++]);
            if ($shift < 64) {
                $result |= ($byte & 0x7F) << $shift;
            }
            if ($byte < 0x80) {
                return $result;
            }
        }
        throw new \UnexpectedValueException('protobuf: varint longer than 10 bytes at byte ' . $pos);
    }

    /**
     * Encode an `http.v1.Response`.
     *
     * @param int                              $status  HTTP status (0 is not written)
     * @param array<array-key, string|string[]> $headers name => value or list of values
     */
    public static function encodeResponse(int $status, array $headers = []): string
    {
        $out = $status !== 0 ? "\x08" . self::varint($status) : '';

        return $out . self::encodeMap(2, $headers);
    }

    /**
     * Decode an `http.v1.Response`.
     *
     * @return array{status:int, headers:array<string, list<string>>}
     * @throws \UnexpectedValueException on malformed input
     */
    public static function decodeResponse(string $bytes): array
    {
        $result = ['status' => 0, 'headers' => []];
        $pos = 0;
        $end = strlen($bytes);
        while ($pos < $end) {
            [$field, $type] = self::tag($bytes, $pos);
            if ($type !== self::LEN) {
                $value = self::scalar($bytes, $pos, $end, $field, $type);
                if ($field === 1 && $type === self::VARINT) {
                    $result['status'] = $value;
                }
                continue;
            }
            $size = self::length($bytes, $pos, $end, $field);
            if ($field === 2) {
                [$key, $values] = self::decodeEntry($bytes, $pos, $pos + $size);
                $result['headers'][$key] = $values;
            }
            $pos += $size;
        }

        return $result;
    }

    /**
     * Encode an `http.v1.Request` (the server's side; used by tests and tools).
     *
     * @param array{remoteAddr?:string, protocol?:string, method?:string, uri?:string,
     *              headers?:array<array-key, string|string[]>, cookies?:array<array-key, string|string[]>,
     *              rawQuery?:string, parsed?:bool, uploads?:string,
     *              attributes?:array<array-key, string|string[]>} $request
     */
    public static function encodeRequest(array $request): string
    {
        $out = '';
        foreach ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] as $field) {
            if (isset(self::REQUEST_STRINGS[$field])) {
                $out .= self::encodeBytes($field, (string) ($request[self::REQUEST_STRINGS[$field]] ?? ''));
            } elseif (isset(self::REQUEST_MAPS[$field])) {
                $out .= self::encodeMap($field, $request[self::REQUEST_MAPS[$field]] ?? []);
            } elseif (!empty($request['parsed'])) {
                $out .= "\x40\x01"; // field 8, varint, true
            }
        }

        return $out;
    }

    /**
     * Decode an `http.v1.Request`.
     *
     * @return array{remoteAddr:string, protocol:string, method:string, uri:string,
     *               headers:array<string, list<string>>, cookies:array<string, list<string>>,
     *               rawQuery:string, parsed:bool, uploads:string,
     *               attributes:array<string, list<string>>}
     * @throws \UnexpectedValueException on malformed input
     */
    public static function decodeRequest(string $bytes): array
    {
        $result = [
            'remoteAddr' => '', 'protocol' => '', 'method' => '', 'uri' => '',
            'headers' => [], 'cookies' => [], 'rawQuery' => '', 'parsed' => false,
            'uploads' => '', 'attributes' => [],
        ];
        // One pass with a cursor and no list of fields, the one-byte tags and lengths of a
        // typical request read in line: this runs for every request a worker serves.
        $pos = 0;
        $end = strlen($bytes);
        while ($pos < $end) {
            $tag = ord($bytes[$pos]);
            if ($tag >= 0x08 && $tag < 0x80) {
                $pos++;
                $field = $tag >> 3;
                $type = $tag & 0x07;
            } else {
                [$field, $type] = self::tag($bytes, $pos);
            }
            if ($type !== self::LEN) {
                $value = self::scalar($bytes, $pos, $end, $field, $type);
                if ($field === 8 && $type === self::VARINT) {
                    $result['parsed'] = $value !== 0;
                }
                continue;
            }
            if ($pos < $end && ($size = ord($bytes[$pos])) < 0x80 && $size < $end - $pos) {
                $pos++;
            } else {
                $size = self::length($bytes, $pos, $end, $field);
            }
            if (isset(self::REQUEST_STRINGS[$field])) {
                $result[self::REQUEST_STRINGS[$field]] = (string) substr($bytes, $pos, $size);
            } elseif (isset(self::REQUEST_MAPS[$field])) {
                [$key, $values] = self::decodeEntry($bytes, $pos, $pos + $size);
                $result[self::REQUEST_MAPS[$field]][$key] = $values;
            }
            $pos += $size;
        }

        return $result;
    }

    /**
     * Read a tag at $pos (advanced past it).
     *
     * @return array{0:int, 1:int} field number and wire type
     * @throws \UnexpectedValueException on field number 0 or a truncated tag
     */
    private static function tag(string $bytes, int &$pos): array
    {
        $tag = self::readVarint($bytes, $pos);
        if ($tag >> 3 <= 0) {
            throw new \UnexpectedValueException('protobuf: invalid field number 0 at byte ' . $pos);
        }

        return [$tag >> 3, $tag & 0x07];
    }

    /**
     * Read the length of a LEN field at $pos (advanced past it) and check that many bytes
     * follow before $end.
     *
     * @throws \UnexpectedValueException
     */
    private static function length(string $bytes, int &$pos, int $end, int $field): int
    {
        $size = self::readVarint($bytes, $pos);
        if ($size < 0 || $size > $end - $pos) {
            throw new \UnexpectedValueException(sprintf('protobuf: field %d claims %d bytes, %d left', $field, $size, $end - $pos));
        }

        return $size;
    }

    /**
     * Read (VARINT) or step over (I64, I32) a field that is not LEN; returns the varint, or 0.
     *
     * @throws \UnexpectedValueException on a truncated field or a group wire type
     */
    private static function scalar(string $bytes, int &$pos, int $end, int $field, int $type): int
    {
        if ($type === self::VARINT) {
            return self::readVarint($bytes, $pos);
        }
        if ($type === self::I64 || $type === self::I32) {
            $pos += $type === self::I64 ? 8 : 4;
            if ($pos > $end) {
                throw new \UnexpectedValueException("protobuf: truncated fixed-width field $field");
            }

            return 0;
        }
        // groups are not used by proto3 messages
        throw new \UnexpectedValueException("protobuf: unsupported wire type $type (field $field)");
    }

    /**
     * Decode the map entry `{ string key = 1; HeaderValue value = 2; }` in bytes $pos..$end.
     *
     * @return array{0:string, 1:list<string>}
     * @throws \UnexpectedValueException
     */
    private static function decodeEntry(string $bytes, int $pos, int $end): array
    {
        $key = '';
        $values = [];
        while ($pos < $end) {
            $tag = ord($bytes[$pos]);
            if ($tag === 0x0a || $tag === 0x12) { // key or value, LEN: the usual case
                $pos++;
                $field = $tag >> 3;
                $type = self::LEN;
            } else {
                [$field, $type] = self::tag($bytes, $pos);
            }
            if ($type !== self::LEN) {
                self::scalar($bytes, $pos, $end, $field, $type);
                continue;
            }
            if ($pos < $end && ($size = ord($bytes[$pos])) < 0x80 && $size < $end - $pos) {
                $pos++;
            } else {
                $size = self::length($bytes, $pos, $end, $field);
            }
            if ($field === 1) {
                $key = (string) substr($bytes, $pos, $size);
                $pos += $size;
                continue;
            }
            if ($field !== 2) {
                $pos += $size;
                continue;
            }
            // HeaderValue { repeated bytes value = 1; }. A message field given twice is
            // merged: repeated values append.
            $valueEnd = $pos + $size;
            while ($pos < $valueEnd) {
                if (ord($bytes[$pos]) === 0x0a) { // value, LEN: the usual case
                    $pos++;
                    $f = 1;
                    $t = self::LEN;
                } else {
                    [$f, $t] = self::tag($bytes, $pos);
                }
                if ($t !== self::LEN) {
                    self::scalar($bytes, $pos, $valueEnd, $f, $t);
                    continue;
                }
                if ($pos < $valueEnd && ($length = ord($bytes[$pos])) < 0x80 && $length < $valueEnd - $pos) {
                    $pos++;
                } else {
                    $length = self::length($bytes, $pos, $valueEnd, $f);
                }
                if ($f === 1) {
                    $values[] = (string) substr($bytes, $pos, $length);
                }
                $pos += $length;
            }
        }

        return [$key, $values];
    }

    private static function encodeBytes(int $field, string $value): string
    {
        return $value === '' ? '' : self::varint($field << 3 | self::LEN) . self::varint(strlen($value)) . $value;
    }

    /**
     * @param array<array-key, string|int|float|bool|null|array<array-key, string|int|float|bool|null>> $map
     */
    private static function encodeMap(int $field, array $map): string
    {
        $out = '';
        foreach ($map as $key => $values) {
            $value = '';
            foreach (is_array($values) ? $values : [$values] as $item) {
                $item = (string) $item;
                // repeated bytes: every element is written, empty ones too
                $value .= "\x0a" . self::varint(strlen($item)) . $item;
            }
            $entry = self::encodeBytes(1, (string) $key) . "\x12" . self::varint(strlen($value)) . $value;
            $out .= self::varint($field << 3 | self::LEN) . self::varint(strlen($entry)) . $entry;
        }

        return $out;
    }
}
