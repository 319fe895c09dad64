;; pi.wat: the smallest complete stepper, written by hand as a reference for the stepper ABI
;; (docs/workloads.md). It sums the Leibniz series 4 * (1 - 1/3 + 1/5 - 1/7 + ...) for pi,
;; a fixed number of terms per step.
;;
;; input  : optional 8 bytes, little-endian u64 = terms per step (default 1_000_000)
;; state  : 24 bytes = u64 terms per step | u64 terms summed so far | f64 partial sum
;; output : 8 bytes, little-endian f64 = the estimate of pi
;;
;; Every call runs in a fresh instance: nothing survives in memory or globals between calls,
;; so all progress lives in the state.
(module
  ;; 1 page to start, at most 16 (1 MiB): a bounded maximum the host can check.
  (memory (export "memory") 1 16)

  ;; Bump allocator for the host's copies of input/state; never frees (the instance is
  ;; thrown away after one call).
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.lt_s
              (memory.grow
                (i32.sub (i32.add (i32.shr_u (local.get $end) (i32.const 16)) (i32.const 1))
                         (memory.size)))
              (i32.const 0))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; (ptr << 32) | len: how every export returns its result.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Results are written at offset 0 (below the heap).
  (func (export "init") (param $ptr i32) (param $len i32) (result i64)
    (i64.store (i32.const 0)
      (if (result i64) (i32.eq (local.get $len) (i32.const 8))
        (then (i64.load (local.get $ptr)))
        (else (i64.const 1000000))))
    (i64.store (i32.const 8) (i64.const 0))
    (f64.store (i32.const 16) (f64.const 0))
    (call $pack (i32.const 0) (i32.const 24)))

  (func (export "step") (param $k i64) (param $ptr i32) (param $len i32) (result i64)
    (local $per i64)
    (local $n i64)
    (local $end i64)
    (local $sum f64)
    ;; A state of the wrong size is a bad input: trap.
    (if (i32.ne (local.get $len) (i32.const 24)) (then unreachable))
    (local.set $per (i64.load (local.get $ptr)))
    (local.set $n (i64.load offset=8 (local.get $ptr)))
    (local.set $sum (f64.load offset=16 (local.get $ptr)))
    (local.set $end (i64.add (local.get $n) (local.get $per)))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $n) (local.get $end)))
        ;; sum += (-1)^n / (2n + 1)
        (local.set $sum
          (f64.add (local.get $sum)
            (f64.div
              (select (f64.const -1) (f64.const 1)
                      (i32.wrap_i64 (i64.and (local.get $n) (i64.const 1))))
              (f64.convert_i64_u
                (i64.add (i64.shl (local.get $n) (i64.const 1)) (i64.const 1))))))
        (local.set $n (i64.add (local.get $n) (i64.const 1)))
        (br $next)))
    (i64.store (i32.const 0) (local.get $per))
    (i64.store (i32.const 8) (local.get $n))
    (f64.store (i32.const 16) (local.get $sum))
    (call $pack (i32.const 0) (i32.const 24)))

  (func (export "output") (param $ptr i32) (param $len i32) (result i64)
    (if (i32.ne (local.get $len) (i32.const 24)) (then unreachable))
    (f64.store (i32.const 0)
      (f64.mul (f64.const 4) (f64.load offset=16 (local.get $ptr))))
    (call $pack (i32.const 0) (i32.const 8))))
