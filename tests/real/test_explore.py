from pathlib import Path
from tests.support.rig import rig

def test_explore(tmp_path: Path) -> None:
    with rig(tmp_path, 3, real=True) as r:
        r.start_daemon()
        r.wait_all_right(timeout=30)
        print(r.asterisk.devices_snapshot())
        r.assert_never_foreign()
