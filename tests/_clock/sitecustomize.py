# Imported by Python at startup when this folder is on PYTHONPATH (make test does that):
# pins the wall clock of this process if CHAIRSIDE_TEST_CLOCK asks (chairside_test_clock.py).
import chairside_test_clock

chairside_test_clock.pin()
