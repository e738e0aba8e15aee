#include "proxy/timer/timer_wheel.h"

namespace portico::proxy {

void Timer::arm(Clock::duration after) {
  if (!wheel_) return;
  if (after.count() <= 0) {
    cancel();
    return;
  }
  wheel_->arm(*this, after);
}

void Timer::cancel() {
  if (next_ && wheel_) wheel_->cancel(*this);
}

TimerWheel::TimerWheel(NowFn now, Clock::duration tick)
    : now_(now), tick_(tick), origin_(now()), slots_(std::make_unique<Timer[]>(kSlots)) {
  for (size_t i = 0; i < kSlots; ++i) {
    slots_[i].prev_ = slots_[i].next_ = &slots_[i];
  }
}

TimerWheel::~TimerWheel() {
  // Timers that outlive the wheel must not touch it: unlink them all.
  for (size_t i = 0; i < kSlots; ++i) {
    Timer* s = &slots_[i];
    while (s->next_ != s) {
      Timer* t = s->next_;
      t->unlink();
      t->wheel_ = nullptr;
    }
    s->prev_ = s->next_ = nullptr;
  }
}

uint64_t TimerWheel::tick_of(Clock::time_point t) const {
  if (t <= origin_) return 0;
  return static_cast<uint64_t>((t - origin_) / tick_);
}

void TimerWheel::arm(Timer& t, Clock::duration after) {
  if (t.next_) {
    t.unlink();
    --armed_;
  }
  // The first tick whose start is at or after the deadline: never early.
  const auto deadline = now_() + after;
  uint64_t target = tick_of(deadline);
  if (origin_ + tick_ * static_cast<Clock::rep>(target) < deadline) ++target;
  if (target <= current_) target = current_ + 1;
  const uint64_t ahead = target - (current_ + 1);
  t.rounds_ = ahead / kSlots;
  Timer* head = &slots_[target & (kSlots - 1)];
  t.prev_ = head->prev_;
  t.next_ = head;
  head->prev_->next_ = &t;
  head->prev_ = &t;
  if (armed_++ == 0 && on_first_) on_first_();
}

void TimerWheel::cancel(Timer& t) {
  t.unlink();
  --armed_;
}

void TimerWheel::advance(Clock::time_point now) {
  const uint64_t until = tick_of(now);
  while (current_ < until) {
    ++current_;
    if (armed_ == 0) {
      current_ = until;
      break;
    }
    Timer* head = &slots_[current_ & (kSlots - 1)];
    if (head->next_ == head) continue;
    // Detach the slot into a local list: callbacks may arm (into this very slot) or cancel timers.
    Timer local;
    local.next_ = head->next_;
    local.prev_ = head->prev_;
    local.next_->prev_ = &local;
    local.prev_->next_ = &local;
    head->next_ = head->prev_ = head;
    while (local.next_ != &local) {
      Timer* t = local.next_;
      t->unlink();
      if (t->rounds_ > 0) {
        --t->rounds_;
        t->prev_ = head->prev_;
        t->next_ = head;
        head->prev_->next_ = t;
        head->prev_ = t;
        continue;
      }
      --armed_;
      if (t->on_fire_) t->on_fire_();
    }
    local.prev_ = local.next_ = nullptr;
  }
}

}  // namespace portico::proxy
