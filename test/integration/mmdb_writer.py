# SPDX-License-Identifier: Apache-2.0
"""A tiny MaxMind DB (.mmdb) writer for tests: networks -> {country, subdivisions} records.

Follows the MaxMind DB File Format Specification 2.0 (https://maxmind.github.io/MaxMind-DB/):
a binary search tree (one level per address bit, two records per node), a 16-byte zero
separator, the data section, then "\\xab\\xcd\\xefMaxMind.com" and the metadata map. Only what
GeoIP lookups in tests need: strings, maps, arrays, unsigned ints, doubles and booleans; no
pointers (every record is written once, identical records shared by offset).

    python3 mmdb_writer.py out.mmdb 10.1.0.0/16=CN-ZJ 2001:db8::/32=US
    python3 mmdb_writer.py out.mmdb --cxx-header test_mmdb.h --cxx-symbol kTestMmdb ...

Used by test/integration/test_lbs.py (import) and to generate the unit tests' embedded copy.
"""
import argparse
import ipaddress
import struct
import sys

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
DATA_SEPARATOR = 16

# Data types (spec: "Output Data Section").
T_POINTER, T_STRING, T_DOUBLE, T_BYTES, T_UINT16, T_UINT32, T_MAP = 1, 2, 3, 4, 5, 6, 7
T_INT32, T_UINT64, T_UINT128, T_ARRAY, T_CONTAINER, T_END, T_BOOL, T_FLOAT = range(8, 16)


class U16(int):
    pass


class U32(int):
    pass


class U64(int):
    pass


def _control(type_, size):
    """Control byte(s): 3 type bits (0 = extended, type - 7 in the next byte), 5 size bits."""
    if size < 29:
        bits, extra = size, b""
    elif size < 29 + 256:
        bits, extra = 29, bytes([size - 29])
    elif size < 285 + 65536:
        bits, extra = 30, (size - 285).to_bytes(2, "big")
    elif size < 65821 + (1 << 24):
        bits, extra = 31, (size - 65821).to_bytes(3, "big")
    else:
        raise ValueError("value too large for an mmdb field")
    if type_ <= 7:
        return bytes([(type_ << 5) | bits]) + extra
    return bytes([bits, type_ - 7]) + extra


def _uint(type_, value, width):
    if value < 0 or value >= 1 << (8 * width):
        raise ValueError(f"{value} does not fit in {width} bytes")
    raw = value.to_bytes(width, "big").lstrip(b"\x00")  # minimal big-endian; 0 is empty
    return _control(type_, len(raw)) + raw


def encode(value):
    """Encodes a Python value: str, bool, float, dict (string keys), list/tuple, int types."""
    if isinstance(value, bool):
        return _control(T_BOOL, 1 if value else 0)
    if isinstance(value, U16):
        return _uint(T_UINT16, value, 2)
    if isinstance(value, U64):
        return _uint(T_UINT64, value, 8)
    if isinstance(value, int):  # U32 and plain ints
        return _uint(T_UINT32, value, 4)
    if isinstance(value, float):
        return _control(T_DOUBLE, 8) + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _control(T_STRING, len(raw)) + raw
    if isinstance(value, bytes):
        return _control(T_BYTES, len(value)) + value
    if isinstance(value, dict):
        out = _control(T_MAP, len(value))
        for k, v in value.items():
            out += encode(str(k)) + encode(v)
        return out
    if isinstance(value, (list, tuple)):
        out = _control(T_ARRAY, len(value))
        for v in value:
            out += encode(v)
        return out
    raise TypeError(f"cannot encode {type(value).__name__}")


class _Node:
    __slots__ = ("children",)

    def __init__(self):
        self.children = [None, None]  # None (no data), _Node, or ("data", offset)


def _bits(network, ip_version):
    """The network's prefix bits as the tree walks them (IPv4 at ::a.b.c.d in an IPv6 tree)."""
    addr = int(network.network_address)
    if network.version == 4:
        total, prefix = 32, network.prefixlen
        lead = 96 if ip_version == 6 else 0
    else:
        if ip_version == 4:
            raise ValueError(f"{network} is IPv6 but the database is IPv4-only")
        total, prefix, lead = 128, network.prefixlen, 0
    return [0] * lead + [(addr >> (total - 1 - i)) & 1 for i in range(prefix)]


def build(networks, ip_version=6, record_size=28, database_type="imgate-Test-Country",
          build_epoch=1700000000, languages=("en",), description=None):
    """Returns the bytes of a database mapping each (cidr, record) of `networks`.

    More specific networks win over the blocks that contain them, whatever the order given.
    build_epoch must not be 0: libmaxminddb takes 0 for "missing" and refuses the file.
    """
    if record_size not in (24, 28, 32):
        raise ValueError("record_size must be 24, 28 or 32")
    parsed = [(ipaddress.ip_network(cidr, strict=True), record) for cidr, record in networks]
    parsed.sort(key=lambda item: (item[0].prefixlen + (96 if item[0].version == 4 else 0)))

    data = bytearray()
    offsets = {}  # encoded record -> offset, so identical records are stored once
    root = _Node()
    for network, record in parsed:
        blob = encode(record)
        if blob not in offsets:
            offsets[blob] = len(data)
            data += blob
        leaf = ("data", offsets[blob])
        bits = _bits(network, ip_version)
        if not bits:
            raise ValueError("a /0 network cannot be stored (the root has no record)")
        node = root
        for bit in bits[:-1]:
            child = node.children[bit]
            if not isinstance(child, _Node):
                pushed = _Node()
                pushed.children = [child, child]  # a containing block covers both halves
                node.children[bit] = pushed
                child = pushed
            node = child
        node.children[bits[-1]] = leaf

    order, index = [root], {id(root): 0}
    i = 0
    while i < len(order):  # breadth-first numbering; the root is node 0
        for child in order[i].children:
            if isinstance(child, _Node):
                index[id(child)] = len(order)
                order.append(child)
        i += 1
    node_count = len(order)

    def record_value(child):
        if child is None:
            return node_count
        if isinstance(child, _Node):
            return index[id(child)]
        return node_count + DATA_SEPARATOR + child[1]

    limit = 1 << record_size
    tree = bytearray()
    for node in order:
        left, right = (record_value(c) for c in node.children)
        if left >= limit or right >= limit:
            raise ValueError(f"record does not fit in {record_size} bits")
        if record_size == 24:
            tree += left.to_bytes(3, "big") + right.to_bytes(3, "big")
        elif record_size == 28:
            tree += (left & 0xFFFFFF).to_bytes(3, "big")
            tree.append(((left >> 24) & 0x0F) << 4 | ((right >> 24) & 0x0F))
            tree += (right & 0xFFFFFF).to_bytes(3, "big")
        else:
            tree += left.to_bytes(4, "big") + right.to_bytes(4, "big")

    metadata = {
        "node_count": U32(node_count),
        "record_size": U16(record_size),
        "ip_version": U16(ip_version),
        "database_type": database_type,
        "languages": list(languages),
        "binary_format_major_version": U16(2),
        "binary_format_minor_version": U16(0),
        "build_epoch": U64(build_epoch),
        "description": description or {"en": "imgate test database"},
    }
    return bytes(tree) + bytes(DATA_SEPARATOR) + bytes(data) + METADATA_MARKER + encode(metadata)


def location_record(code):
    """ "CN" -> {"country": {"iso_code": "CN"}}; "CN-ZJ" adds subdivisions[0].iso_code "ZJ"."""
    country, _, sub = code.partition("-")
    record = {"country": {"iso_code": country}}
    if sub:
        record["subdivisions"] = [{"iso_code": sub}]
    return record


def write(path, networks, **kw):
    with open(path, "wb") as f:
        f.write(build(networks, **kw))


def cxx_header(blob, symbol):
    lines = ["// SPDX-License-Identifier: Apache-2.0",
             "// Generated by test/integration/mmdb_writer.py; do not edit.",
             "#pragma once", "", "#include <cstddef>", "",
             f"inline constexpr unsigned char {symbol}[] = {{"]
    for i in range(0, len(blob), 16):
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in blob[i:i + 16]) + ",")
    lines.append("};")
    lines.append(f"inline constexpr size_t {symbol}Size = sizeof({symbol});")
    return "\n".join(lines) + "\n"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output")
    p.add_argument("networks", nargs="+", help="CIDR=CC or CIDR=CC-SUB")
    p.add_argument("--record-size", type=int, default=28, choices=(24, 28, 32))
    p.add_argument("--ip-version", type=int, default=6, choices=(4, 6))
    p.add_argument("--cxx-header", help="also write the bytes as a C++ header")
    p.add_argument("--cxx-symbol", default="kTestMmdb")
    args = p.parse_args(argv)
    networks = []
    for item in args.networks:
        cidr, _, code = item.partition("=")
        if not code:
            p.error(f"{item}: expected CIDR=CODE")
        networks.append((cidr, location_record(code)))
    blob = build(networks, ip_version=args.ip_version, record_size=args.record_size)
    with open(args.output, "wb") as f:
        f.write(blob)
    if args.cxx_header:
        with open(args.cxx_header, "w") as f:
            f.write(cxx_header(blob, args.cxx_symbol))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
