from enum import IntEnum

class SignalHandlerOptions(IntEnum):
    NO = 0
    SigInt = 1
    SigTerm = 2
    ALL = 3
