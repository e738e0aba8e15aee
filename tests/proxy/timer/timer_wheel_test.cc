#include "proxy/timer/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace portico::proxy {
namespace {

// A fake clock: tests move it by hand.
Clock::time_point g_now = Clock::time_point() + std::chrono::hours(1);
Clock::time_point fake_now() {
  return g_now;
}

class TimerWheelTest : public ::testing::Test {
 protected:
  TimerWheelTest() : wheel(&fake_now, std::chrono::milliseconds(10)) {}
  void advance(std::chrono::milliseconds d) {
    g_now += d;
    wheel.advance(g_now);
  }
  TimerWheel wheel;
};

TEST_F(TimerWheelTest, FiresAtOrAfterTheDeadlineNeverBefore) {
  int fired = 0;
  Timer t(wheel, [&] { ++fired; });
  t.arm(std::chrono::milliseconds(25));
  EXPECT_TRUE(t.armed());
  advance(std::chrono::milliseconds(20));
  EXPECT_EQ(fired, 0);
  advance(std::chrono::milliseconds(10));
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t.armed());
  advance(std::chrono::milliseconds(100));
  EXPECT_EQ(fired, 1);  // once
  EXPECT_EQ(wheel.armed(), 0u);
}

TEST_F(TimerWheelTest, CancelAndRearm) {
  int fired = 0;
  Timer t(wheel, [&] { ++fired; });
  t.arm(std::chrono::milliseconds(50));
  t.cancel();
  advance(std::chrono::milliseconds(100));
  EXPECT_EQ(fired, 0);
  t.arm(std::chrono::milliseconds(50));
  advance(std::chrono::milliseconds(30));
  t.arm(std::chrono::milliseconds(50));  // re-arming moves the deadline
  advance(std::chrono::milliseconds(30));
  EXPECT_EQ(fired, 0);
  advance(std::chrono::milliseconds(30));
  EXPECT_EQ(fired, 1);
}

TEST_F(TimerWheelTest, ZeroDurationDisarms) {
  int fired = 0;
  Timer t(wheel, [&] { ++fired; });
  t.arm(std::chrono::milliseconds(10));
  t.arm(Clock::duration::zero());
  EXPECT_FALSE(t.armed());
  advance(std::chrono::milliseconds(50));
  EXPECT_EQ(fired, 0);
}

TEST_F(TimerWheelTest, DeadlinesLongerThanOneTurnCountRounds) {
  int fired = 0;
  Timer t(wheel, [&] { ++fired; });
  // 4096 slots of 10 ms: one turn is 40.96 s. 100 s takes two full turns and a bit.
  t.arm(std::chrono::seconds(100));
  for (int i = 0; i < 99; ++i)
    advance(std::chrono::seconds(1));
  EXPECT_EQ(fired, 0);
  advance(std::chrono::seconds(1));
  EXPECT_EQ(fired, 1);
}

TEST_F(TimerWheelTest, ALateAdvanceFiresEverythingDue) {
  std::vector<int> order;
  Timer a(wheel, [&] { order.push_back(1); });
  Timer b(wheel, [&] { order.push_back(2); });
  Timer c(wheel, [&] { order.push_back(3); });
  a.arm(std::chrono::milliseconds(10));
  b.arm(std::chrono::milliseconds(500));
  c.arm(std::chrono::milliseconds(5000));
  advance(std::chrono::milliseconds(1000));  // the worker was busy for a second
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST_F(TimerWheelTest, CallbacksMayArmAndCancelTimers) {
  int b_fired = 0, c_fired = 0;
  Timer c(wheel, [&] { ++c_fired; });
  Timer b(wheel, [&] { ++b_fired; });
  Timer a(wheel, [&] {
    c.cancel();                            // same slot, not yet run
    b.arm(std::chrono::milliseconds(10));  // into a later slot
  });
  a.arm(std::chrono::milliseconds(10));
  c.arm(std::chrono::milliseconds(10));
  advance(std::chrono::milliseconds(10));
  EXPECT_EQ(c_fired, 0);
  EXPECT_EQ(b_fired, 0);
  advance(std::chrono::milliseconds(10));
  EXPECT_EQ(b_fired, 1);
}

TEST_F(TimerWheelTest, DestroyingAnArmedTimerUnlinksIt) {
  {
    Timer t(wheel, [] { FAIL() << "a destroyed timer fired"; });
    t.arm(std::chrono::milliseconds(10));
    EXPECT_EQ(wheel.armed(), 1u);
  }
  EXPECT_EQ(wheel.armed(), 0u);
  advance(std::chrono::milliseconds(50));
}

TEST_F(TimerWheelTest, FirstTimerNotifiesTheDriver) {
  int notified = 0;
  wheel.on_first_timer([&] { ++notified; });
  Timer a(wheel, [] {});
  Timer b(wheel, [] {});
  a.arm(std::chrono::milliseconds(10));
  b.arm(std::chrono::milliseconds(10));
  EXPECT_EQ(notified, 1);
  advance(std::chrono::milliseconds(10));
  a.arm(std::chrono::milliseconds(10));
  EXPECT_EQ(notified, 2);
}

TEST_F(TimerWheelTest, TimersOutlivingTheWheelAreSafe) {
  auto w = std::make_unique<TimerWheel>(&fake_now, std::chrono::milliseconds(10));
  Timer t(*w, [] {});
  t.arm(std::chrono::milliseconds(10));
  w.reset();
  t.cancel();  // must not touch the freed wheel
  EXPECT_FALSE(t.armed());
}

}  // namespace
}  // namespace portico::proxy
