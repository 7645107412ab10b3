<?php

declare(strict_types=1);

namespace Rr\Kv;

/**
 * Hand-written protobuf codec of RoadRunner's kv.v1 messages:
 *
 *     message Request  { string storage = 1; repeated Item items = 2; }
 *     message Item     { string key = 1; bytes value = 2; string timeout = 3; }
 *     message Response { repeated Item items = 1; }
 *
 * An item is an array ['key' => string, 'value' => string, 'timeout' => string].
 */
final class Proto
{
    /**
     * @param list<array{key: string, value?: string, timeout?: string}> $items
     */
    public static function encodeRequest(string $storage, array $items): string
    {
        $out = self::bytesField(1, $storage, false);
        foreach ($items as $item) {
            $encoded = self::bytesField(1, $item['key'], false)
                . self::bytesField(2, $item['value'] ?? '', false)
                . self::bytesField(3, $item['timeout'] ?? '', false);
            $out .= self::bytesField(2, $encoded, true);
        }

        return $out;
    }

    /**
     * @return list<array{key: string, value: string, timeout: string}>
     */
    public static function decodeResponse(string $bytes): array
    {
        $items = [];
        foreach (self::fields($bytes) as [$field, $data]) {
            if ($field !== 1) {
                continue;
            }
            $item = ['key' => '', 'value' => '', 'timeout' => ''];
            foreach (self::fields($data) as [$f, $d]) {
                match ($f) {
                    1 => $item['key'] = $d,
                    2 => $item['value'] = $d,
                    3 => $item['timeout'] = $d,
                    default => null,
                };
            }
            $items[] = $item;
        }

        return $items;
    }

    private static function varint(int $value): string
    {
        $out = '';
        while ($value >= 0x80) {
            $out .= chr(($value & 0x7F) | 0x80);
            $value >>= 7;
        }

        return $out . chr($value);
    }

    private static function bytesField(int $field, string $data, bool $always): string
    {
        if ($data === '' && !$always) {
            return '';
        }

        return self::varint(($field << 3) | 2) . self::varint(strlen($data)) . $data;
    }

    private static function readVarint(string $bytes, int &$pos): int
    {
        $value = 0;
        for ($shift = 0; $shift < 64; $shift += 7) {
            if ($pos >= strlen($bytes)) {
                throw new KvException('kv: truncated protobuf reply');
            }
            $byte = ord($bytes[$pos++]);
            $value |= ($byte & 0x7F) << $shift;
            if ($byte < 0x80) {
                return $value;
            }
        }
        throw new KvException('kv: varint overflow in protobuf reply');
    }

    /**
     * Length-delimited fields as [number, bytes]; other wire types are skipped.
     *
     * @return list<array{int, string}>
     */
    private static function fields(string $bytes): array
    {
        $fields = [];
        $pos = 0;
        $len = strlen($bytes);
        while ($pos < $len) {
            $tag = self::readVarint($bytes, $pos);
            $wire = $tag & 7;
            switch ($wire) {
                case 0:
                    self::readVarint($bytes, $pos);
                    break;
                case 1:
                    $pos += 8;
                    break;
                case 5:
                    $pos += 4;
                    break;
                case 2:
                    $n = self::readVarint($bytes, $pos);
                    if ($pos + $n > $len) {
                        throw new KvException('kv: truncated protobuf reply');
                    }
                    $fields[] = [$tag >> 3, substr($bytes, $pos, $n)];
                    $pos += $n;
                    break;
                default:
                    throw new KvException("kv: unsupported protobuf wire type $wire");
            }
        }

        return $fields;
    }
}
