#include <gtest/gtest.h>

#include "util/cpumask.h"

using nocstor::parse_cpumask;

TEST(Cpumask, HexAndListForms) {
    std::set<int> c;
    std::string err;
    ASSERT_TRUE(parse_cpumask("0x5", &c, &err)) << err;
    EXPECT_EQ(c, (std::set<int>{0, 2}));
    ASSERT_TRUE(parse_cpumask("F0", &c, &err)) << err;
    EXPECT_EQ(c, (std::set<int>{4, 5, 6, 7}));
    ASSERT_TRUE(parse_cpumask("[0,2-3]", &c, &err)) << err;
    EXPECT_EQ(c, (std::set<int>{0, 2, 3}));
    for (const char* bad : {"", "0x", "0x0", "zz", "[", "[]", "[3-1]", "[1,]", "[1]x", "[99999]"})
        EXPECT_FALSE(parse_cpumask(bad, &c, &err)) << bad;
}
