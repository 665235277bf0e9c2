"""aitp"""
