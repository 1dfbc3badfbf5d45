//! A read-only array that either owns its memory or views a memory-mapped cache file. Cloning is
//! cheap (reference counted), so datasets that differ only in their split share their items.

use memmap2::Mmap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

pub enum Buf<T> {
    Owned(Arc<Vec<T>>),
    Mapped {
        map: Arc<Mmap>,
        /// Byte offset of the first element; a multiple of the element's alignment.
        offset: usize,
        len: usize,
        _elem: PhantomData<T>,
    },
}

impl<T> Clone for Buf<T> {
    fn clone(&self) -> Self {
        match self {
            Buf::Owned(v) => Buf::Owned(Arc::clone(v)),
            Buf::Mapped {
                map, offset, len, ..
            } => Buf::Mapped {
                map: Arc::clone(map),
                offset: *offset,
                len: *len,
                _elem: PhantomData,
            },
        }
    }
}

impl<T: Copy> Buf<T> {
    pub fn owned(values: Vec<T>) -> Self {
        Buf::Owned(Arc::new(values))
    }

    /// Views `len` elements at byte `offset` of `map`. The caller checked bounds and alignment.
    pub fn mapped(map: &Arc<Mmap>, offset: usize, len: usize) -> Self {
        assert!(offset + len * std::mem::size_of::<T>() <= map.len());
        assert_eq!(offset % std::mem::align_of::<T>(), 0);
        Buf::Mapped {
            map: Arc::clone(map),
            offset,
            len,
            _elem: PhantomData,
        }
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self, Buf::Mapped { .. })
    }
}

impl<T: Copy> Deref for Buf<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Buf::Owned(v) => v.as_slice(),
            // SAFETY: `mapped` checked bounds and alignment; the map is read-only and lives as
            // long as this Buf holds its Arc; T is a plain integer type.
            Buf::Mapped {
                map, offset, len, ..
            } => unsafe { std::slice::from_raw_parts(map.as_ptr().add(*offset) as *const T, *len) },
        }
    }
}
