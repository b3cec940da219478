"""Python values <-> object bytes.

Layout of a serialized value (little endian):

    b"SHP1" | u32 num_buffers | u64 pickle_offset | u64 pickle_size
    | num_buffers * (u64 offset, u64 size) | pickle bytes | (padding, buffer)...

The pickle is protocol 5 (cloudpickle, so lambdas and local classes travel); buffers that
support out-of-band pickling (numpy arrays, PickleBuffer) are not copied into the pickle but
laid after it, each 64-byte aligned, so that a reader maps them straight out of shared memory:
a numpy array read back is a read-only view of the object store, not a copy.

ObjectRefs inside a value are pickled as (id, owner address); `serialize` reports them so the
caller can keep them alive while the value is in flight.

Plain data (numbers, strings, bytes, None, flat lists/tuples/dicts of them, numpy arrays without
Python objects inside) is pickled by the standard library's pickler: the same bytes cloudpickle
makes for it (cloudpickle differs only for functions and classes), without building a
CloudPickler per value, which was half the cost of a small `put`.
"""
import pickle
import struct
import threading

import cloudpickle

MAGIC = b"SHP1"
_HEADER = struct.Struct("<4sIQQ")
_ENTRY = struct.Struct("<QQ")
_ALIGN = 64

_context = threading.local()

_PLAIN = frozenset((int, float, bool, complex, str, bytes, type(None)))
_MAX_PLAIN_ITEMS = 256  # past this, checking every item costs more than cloudpickle saves


def _plain(value):
    """True when `value` holds no function, class or ObjectRef (so pickle.dumps and
    cloudpickle.dumps write the same thing) and that is cheap to tell."""
    t = type(value)
    if t in _PLAIN:
        return True
    if t is list or t is tuple:
        return len(value) <= _MAX_PLAIN_ITEMS and all(type(v) in _PLAIN for v in value)
    if t is dict:
        return len(value) <= _MAX_PLAIN_ITEMS and all(type(k) in _PLAIN and type(v) in _PLAIN
                                                     for k, v in value.items())
    if t.__name__ == "ndarray" and t.__module__ == "numpy":
        return not value.dtype.hasobject
    return False


class SerializationError(TypeError):
    """A value could not be pickled."""


def contained_refs_sink():
    """The list ObjectRef.__reduce__ appends to while a value is being serialized."""
    return getattr(_context, "refs", None)


def _align(n):
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def serialize(value):
    """Answers (parts, total_size, contained_refs): `parts` are bytes-like pieces that laid end to
    end form the object."""
    buffers = []
    if _plain(value):
        data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        refs = []
    else:
        outer = getattr(_context, "refs", None)
        _context.refs = refs = []
        try:
            data = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        except Exception as e:  # noqa: BLE001 - any pickling failure is the user's value
            raise SerializationError(f"could not serialize {type(value).__name__} value: {e}") from e
        finally:
            _context.refs = outer
    raws = [b.raw() for b in buffers]
    header_size = _HEADER.size + _ENTRY.size * len(raws)
    pickle_offset = header_size
    offset = _align(pickle_offset + len(data)) if raws else pickle_offset + len(data)
    entries = []
    layout = []
    for raw in raws:
        entries.append((offset, raw.nbytes))
        layout.append(offset)
        offset = _align(offset + raw.nbytes)
    total = (entries[-1][0] + entries[-1][1]) if entries else pickle_offset + len(data)
    header = bytearray(_HEADER.pack(MAGIC, len(raws), pickle_offset, len(data)))
    for e in entries:
        header += _ENTRY.pack(*e)
    parts = [bytes(header), data]
    position = pickle_offset + len(data)
    for raw, start in zip(raws, layout):
        if start > position:
            parts.append(bytes(start - position))
        parts.append(raw)
        position = start + raw.nbytes
    return parts, total, refs


def serialize_to_bytes(value):
    """As serialize, as one bytes object."""
    parts, _, refs = serialize(value)
    return b"".join(parts), refs


def deserialize(buffer):
    """The value in `buffer` (bytes or a read-only buffer over the object)."""
    view = memoryview(buffer)
    if view.nbytes < _HEADER.size:
        raise ValueError(f"not a Shoal Python value ({view.nbytes} bytes)")
    magic, num_buffers, pickle_offset, pickle_size = _HEADER.unpack_from(view, 0)
    if magic != MAGIC:
        raise ValueError("not a Shoal Python value (it was not written by Shoal's Python API)")
    oob = []
    for i in range(num_buffers):
        offset, size = _ENTRY.unpack_from(view, _HEADER.size + i * _ENTRY.size)
        oob.append(view[offset:offset + size])
    return pickle.loads(view[pickle_offset:pickle_offset + pickle_size], buffers=oob)
