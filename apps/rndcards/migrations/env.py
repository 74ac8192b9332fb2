from plinth.migrations import run_env
from rndcards.models import Base

run_env(Base.metadata)
