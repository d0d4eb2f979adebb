//! Per-thread reuse of image-sized buffers between the stages of a run and between images.
//!
//! A fresh buffer of a whole image is a few hundred pages that the kernel must map and zero on
//! first touch (the allocator gives large freed blocks back to the system); measured on BBBC005
//! that was about a quarter of the CPU time per image. The pipeline takes its planes, masks and
//! label buffers from here and hands back those it no longer needs, so that a thread that
//! segments many images touches fresh memory only for the first. At most [`KEEP`] buffers and
//! [`KEEP_BYTES`] of each type are kept per thread.

use std::cell::RefCell;

/// At most this many buffers of each type are kept per thread...
const KEEP: usize = 4;
/// ...holding at most this many bytes together (large images: fewer buffers kept, never more
/// memory than this per type and thread).
const KEEP_BYTES: usize = 64 << 20;

#[derive(Default)]
struct Pool {
    f32s: Vec<Vec<f32>>,
    u32s: Vec<Vec<u32>>,
    bools: Vec<Vec<bool>>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Takes the kept buffer with the smallest capacity of at least `len`, emptied.
fn take<T>(list: &mut Vec<Vec<T>>, len: usize) -> Vec<T> {
    let best = list
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i);
    match best {
        Some(i) => {
            let mut v = list.swap_remove(i);
            v.clear();
            v
        }
        None => Vec::with_capacity(len),
    }
}

fn give<T>(list: &mut Vec<Vec<T>>, v: Vec<T>) {
    let bytes = |v: &Vec<T>| v.capacity() * std::mem::size_of::<T>();
    let new = bytes(&v);
    if new == 0 || new > KEEP_BYTES {
        return;
    }
    let kept: usize = list.iter().map(bytes).sum();
    if list.len() < KEEP && kept + new <= KEEP_BYTES {
        list.push(v);
        return;
    }
    // Full: the new buffer replaces the smallest kept one if it is larger and fits the budget.
    if let Some(i) = (0..list.len()).min_by_key(|&i| list[i].capacity()) {
        if list[i].capacity() < v.capacity() && kept - bytes(&list[i]) + new <= KEEP_BYTES {
            list[i] = v;
        }
    }
}

/// An empty `Vec<f32>` with capacity for at least `len` values.
pub(crate) fn f32s(len: usize) -> Vec<f32> {
    POOL.with(|p| take(&mut p.borrow_mut().f32s, len))
}

/// `len` copies of `value`.
pub(crate) fn f32s_filled(len: usize, value: f32) -> Vec<f32> {
    let mut v = f32s(len);
    v.resize(len, value);
    v
}

pub(crate) fn recycle_f32s(v: Vec<f32>) {
    POOL.with(|p| give(&mut p.borrow_mut().f32s, v));
}

/// An empty `Vec<u32>` with capacity for at least `len` values.
pub(crate) fn u32s(len: usize) -> Vec<u32> {
    POOL.with(|p| take(&mut p.borrow_mut().u32s, len))
}

pub(crate) fn recycle_u32s(v: Vec<u32>) {
    POOL.with(|p| give(&mut p.borrow_mut().u32s, v));
}

/// An empty `Vec<bool>` with capacity for at least `len` values.
pub(crate) fn bools(len: usize) -> Vec<bool> {
    POOL.with(|p| take(&mut p.borrow_mut().bools, len))
}

pub(crate) fn recycle_bools(v: Vec<bool>) {
    POOL.with(|p| give(&mut p.borrow_mut().bools, v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_empties_buffers() {
        let mut v = f32s(100);
        v.resize(100, 3.0);
        let ptr = v.as_ptr();
        recycle_f32s(v);
        let w = f32s(50);
        assert!(w.is_empty() && w.capacity() >= 100);
        assert_eq!(w.as_ptr(), ptr);
        let filled = f32s_filled(10, 1.5);
        assert_eq!(filled, vec![1.5; 10]);
        recycle_f32s(w);
        // Too large for anything kept: a new buffer.
        assert!(f32s(1_000).capacity() >= 1_000);
    }

    #[test]
    fn keeps_a_bounded_number_of_bytes() {
        let mut list: Vec<Vec<u32>> = Vec::new();
        for _ in 0..10 {
            give(&mut list, Vec::with_capacity(1000));
        }
        assert_eq!(list.len(), KEEP);
        // Larger than the whole budget: not kept.
        give(&mut list, Vec::with_capacity(KEEP_BYTES / 4 + 1));
        assert!(list.iter().all(|v| v.capacity() < 2000));
        // Half the budget fits once, replacing a small one; a second would exceed it.
        give(&mut list, Vec::with_capacity(KEEP_BYTES / 8));
        give(&mut list, Vec::with_capacity(KEEP_BYTES / 8 + 10));
        let total: usize = list.iter().map(|v| v.capacity() * 4).sum();
        assert!(total <= KEEP_BYTES, "{total}");
        assert_eq!(list.len(), KEEP);
    }
}
