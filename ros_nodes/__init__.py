"""Thin rclpy adapters over ``embodied``: camera, sim robot, tokenizer, policy, tools."""
