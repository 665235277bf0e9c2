"""Requirement fixtures shared by the test-case tests (Chinese and English)."""

LOGIN_ZH = (
    "用户名为 4-20 位字母或数字；密码长度必须在 8 到 20 位之间；"
    "连续输错 5 次密码锁定账号 30 分钟；登录成功后跳转到首页。"
)

LOGIN_ZH_DOC = """登录功能需求
一、背景
本文档描述登录模块。
二、规则
1. 用户名不能为空。
2. 密码规则如下：
（1）至少6位
（2）不超过 20 位
注：验证码 6 位数字，有效期 5 分钟。
登录成功后跳转到首页。
登录成功后跳转到首页。
"""

CHECKOUT_EN = """# Checkout

## Background
This document describes the checkout page.

Acceptance criteria:
1. The cart must contain at least 1 item and at most 99 items before checkout.
2. Coupon codes are 6-12 characters long. Only one coupon can be applied per order.
3. Orders over $100.00 get free shipping, e.g. a $120.50 order ships free.
4. The user must pay within 30 minutes, otherwise the order is cancelled.
- Payment supports Visa and Mastercard.

The password must:
- be 8 to 20 characters
- contain a digit
"""
