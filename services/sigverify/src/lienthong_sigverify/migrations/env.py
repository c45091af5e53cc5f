from lienthong_common.migrations import run
from lienthong_sigverify.models import Base

run(Base.metadata)
