"""sagas"""
