# Slots read and written in place, as CPython's specialised bytecode does: a ``__slots__``
# attribute's member descriptor gives its offset in the instance. Included by gate.pyx, whose
# request-path objects (the context, its record, the cache entry) are slotted classes.

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF

import types as _types

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member


cdef object _MEMBER = _types.MemberDescriptorType


cdef Py_ssize_t _offset(type cls, str name) except -1:
    """Where ``cls``'s slot ``name`` lives in its instances (what CPython's own attribute
    cache reads)."""
    descr = cls.__dict__[name]
    if type(descr) is not _MEMBER:
        raise TypeError(f"{cls.__name__}.{name} is not a slot")
    return (<PyMemberDescrObject*>descr).d_member.offset


cdef inline object _get(object obj, type cls, Py_ssize_t offset, str name):
    """``obj.name``, read from its slot when ``obj`` is exactly ``cls`` (a subclass, or an
    empty slot, goes through ``getattr``)."""
    cdef PyObject* value
    if type(obj) is cls:
        value = (<PyObject**>((<char*><PyObject*>obj) + offset))[0]
        if value is not NULL:
            return <object>value
    return getattr(obj, name)


cdef inline int _set(object obj, type cls, Py_ssize_t offset, str name, object value
                     ) except -1:
    """``obj.name = value``, written to its slot when ``obj`` is exactly ``cls``."""
    cdef PyObject** slot
    cdef PyObject* old
    if type(obj) is not cls:
        setattr(obj, name, value)
        return 0
    slot = <PyObject**>((<char*><PyObject*>obj) + offset)
    old = slot[0]
    Py_INCREF(value)
    slot[0] = <PyObject*>value
    Py_XDECREF(old)
    return 0
