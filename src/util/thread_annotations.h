// Clang's thread-safety analysis (-Wthread-safety): what each mutex guards, checked at compile
// time (tools/test runs the check). Other compilers see plain code.
//
// Members a mutex guards are declared GUARDED_BY(mu_); functions that expect it held,
// REQUIRES(mu_). Lock with MutexLock, which also waits on condition variables.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define SENDQ_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SENDQ_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) SENDQ_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY SENDQ_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) SENDQ_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) SENDQ_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) SENDQ_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) SENDQ_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) SENDQ_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) SENDQ_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RETURN_CAPABILITY(x) SENDQ_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS SENDQ_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace sendq {

// A std::mutex the analysis knows about.
class CAPABILITY("mutex") Mutex {
 public:
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex for its scope; may let it go and take it again, and waits on condition
// variables (which let it go while waiting).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : lock_(mu->mu_) {}
  ~MutexLock() RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() { lock_.unlock(); }
  void Lock() ACQUIRE() { lock_.lock(); }

  // Waits on `cv` once (it may wake for no reason); the mutex is held again on return.
  void Wait(std::condition_variable& cv) { cv.wait(lock_); }
  // Waits on `cv` until `ready()`; the mutex is held when `ready` runs and on return.
  template <typename Ready>
  void Wait(std::condition_variable& cv, Ready ready) {
    cv.wait(lock_, ready);
  }
  // For waits that need the standard lock (Clock::WaitUntil); the same rules apply.
  std::unique_lock<std::mutex>& native() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace sendq
