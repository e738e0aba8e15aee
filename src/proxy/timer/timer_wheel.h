// TimerWheel: one per worker, the deadlines of every connection and stream on it (hashed timing
// wheel: O(1) arm, re-arm and cancel, one pass over a slot per tick). Worker thread only. A Timer
// that fires runs its callback once; the owner records the expiry (a sticky flag) before it cancels
// any I/O, so a deadline that fires while no operation is pending is still seen by the next one.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace portico::proxy {

using Clock = std::chrono::steady_clock;

class TimerWheel;

// A deadline. Owned by a connection or a stream; destroying an armed Timer cancels it. The callback
// is set once (a lambda capturing the owner fits std::function's inline storage: no allocation).
class Timer {
 public:
  Timer() = default;
  Timer(TimerWheel& wheel, std::function<void()> on_fire)
      : wheel_(&wheel), on_fire_(std::move(on_fire)) {}
  ~Timer() { cancel(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void bind(TimerWheel& wheel, std::function<void()> on_fire) {
    cancel();
    wheel_ = &wheel;
    on_fire_ = std::move(on_fire);
  }
  // (Re)arms the timer to fire `after` from now; a zero or negative duration disarms it.
  void arm(Clock::duration after);
  void cancel();
  bool armed() const { return next_ != nullptr; }

 private:
  friend class TimerWheel;
  void unlink() {
    prev_->next_ = next_;
    next_->prev_ = prev_;
    prev_ = next_ = nullptr;
  }
  TimerWheel* wheel_ = nullptr;
  std::function<void()> on_fire_;
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  uint64_t rounds_ = 0;
};

class TimerWheel {
 public:
  using NowFn = Clock::time_point (*)();
  static constexpr Clock::duration kDefaultTick = std::chrono::milliseconds(10);
  static constexpr size_t kSlots = 4096;  // ~41 s per turn at 10 ms; longer deadlines count rounds

  // `now` is the clock (a fake one in tests). `tick` is the resolution: a timer fires at the first
  // tick at or after its deadline, never before.
  explicit TimerWheel(NowFn now = &Clock::now, Clock::duration tick = kDefaultTick);
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Fires every timer whose deadline is at or before `now` (callbacks may arm or cancel timers).
  void advance(Clock::time_point now);
  void advance() { advance(now_()); }
  size_t armed() const { return armed_; }
  Clock::duration tick() const { return tick_; }
  // The last tick processed: no clock read, so cheap enough to note activity with on every piece of
  // I/O. It lags the clock by up to a tick (more when the loop is late), and only moves while a
  // timer is armed; inside a timer's callback it is the firing tick.
  uint64_t current_tick() const { return current_; }
  // The tick the clock is in now (reads the clock).
  uint64_t clock_tick() const { return tick_of(now_()); }
  // Called when the first timer is armed into an empty wheel (the worker starts its ticker).
  void on_first_timer(std::function<void()> f) { on_first_ = std::move(f); }

 private:
  friend class Timer;
  void arm(Timer& t, Clock::duration after);
  void cancel(Timer& t);
  uint64_t tick_of(Clock::time_point t) const;

  NowFn now_;
  Clock::duration tick_;
  Clock::time_point origin_;
  uint64_t current_ = 0;  // last tick processed
  size_t armed_ = 0;
  std::unique_ptr<Timer[]> slots_;  // sentinels
  std::function<void()> on_first_;
};

}  // namespace portico::proxy
