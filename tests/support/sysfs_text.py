"""The sysfs of fake USB devices as umockdev-record text (pure): what the kernel would show
for a hub, a stick's usb_device, its option/usb-serial/tty interfaces, a USB audio card, and a
stick still in CD-ROM mode."""

from __future__ import annotations

from typing import Final

from .modemsim import UsbModel

HUB_PATH: Final = "/devices/pci0000:00/0000:00:14.0/usb1/1-1"
ROOT_HUB: Final = "/devices/pci0000:00/0000:00:14.0/usb1"


def usbfs_node(devnum: int) -> str:
    return f"bus/usb/001/{devnum:03d}"


def paragraph(path: str, props: dict[str, str], attrs: dict[str, str], node: str = "") -> str:
    lines = [f"P: {path}"]
    lines += [f"E: {k}={v}" for k, v in props.items()]
    lines += [f"A: {k}={v}" for k, v in attrs.items()]
    if node:
        lines.append(f"N: {node}")
    return "\n".join(lines) + "\n\n"


def hub_text() -> str:
    """The root hub and the hub every fake device hangs off (at HUB_PATH)."""
    return paragraph(
        ROOT_HUB,
        {"SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "PRODUCT": "1d6b/2/606"},
        {"idVendor": "1d6b", "idProduct": "0002", "busnum": "1", "devnum": "1"},
    ) + paragraph(
        HUB_PATH,
        {"SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "PRODUCT": "5e3/608/6062"},
        {
            "idVendor": "05e3",
            "idProduct": "0608",
            "busnum": "1",
            "devnum": "2",
            "product": "USB2.0 Hub",
            "bDeviceClass": "09",
        },
    )


def usb_device_text(model: UsbModel, name: str, usb_port: str, devnum: int) -> str:
    """The usb_device `name` (1-1.<usb_port>) with its usbfs node."""
    n_if = max(1, len(model.interfaces))
    return paragraph(
        f"{HUB_PATH}/{name}",
        {
            "SUBSYSTEM": "usb",
            "DEVTYPE": "usb_device",
            "PRODUCT": f"{int(model.vid, 16):x}/{int(model.pid, 16):x}/0",
            "TYPE": "0/0/0",
            "BUSNUM": "001",
            "DEVNUM": f"{devnum:03d}",
            "DEVNAME": f"/dev/{usbfs_node(devnum)}",
        },
        {
            "idVendor": model.vid,
            "idProduct": model.pid,
            "busnum": "1",
            "devnum": str(devnum),
            "devpath": f"1.{usb_port}",
            "manufacturer": model.manufacturer,
            "product": model.product,
            "bDeviceClass": "00",
            "bNumInterfaces": f"{n_if:2d}",
            "bConfigurationValue": "1",
            "speed": "480",
            "authorized": "1",  # what the recovery ladder's re-authorize step writes
        },
        node=usbfs_node(devnum),  # a plain file; its USBDEVFS_RESET is emulated
    )


def tty_interface_text(model: UsbModel, if_path: str, ifnum: int, tty_no: int) -> str:
    """An option interface at `if_path`, its usb-serial port and its ttyUSB<tty_no>."""
    serial_path = f"{if_path}/ttyUSB{tty_no}"
    return (
        paragraph(
            if_path,
            {
                "SUBSYSTEM": "usb",
                "DEVTYPE": "usb_interface",
                "DRIVER": "option",
                "INTERFACE": "255/255/255",
                "PRODUCT": f"{int(model.vid, 16):x}/{int(model.pid, 16):x}/0",
            },
            {
                "bInterfaceNumber": f"{ifnum:02x}",
                "bAlternateSetting": " 0",
                "bInterfaceClass": "ff",
                "bInterfaceSubClass": "ff",
                "bInterfaceProtocol": "ff",
                "bNumEndpoints": "03",
            },
        )
        + paragraph(
            serial_path,
            {"SUBSYSTEM": "usb-serial", "DRIVER": "option1"},
            {"port_number": "0"},
        )
        + paragraph(
            f"{serial_path}/tty/ttyUSB{tty_no}",
            {
                "SUBSYSTEM": "tty",
                "DEVNAME": f"/dev/ttyUSB{tty_no}",
                "MAJOR": "188",
                "MINOR": str(tty_no),
            },
            {},
            node=f"ttyUSB{tty_no}",
        )
    )


def sound_card_text(if_path: str, ifnum: int, card_path: str, card_id: str, number: int) -> str:
    """A USB Audio Class interface at `if_path` and its ALSA card at `card_path`."""
    return paragraph(
        if_path,
        {
            "SUBSYSTEM": "usb",
            "DEVTYPE": "usb_interface",
            "DRIVER": "snd-usb-audio",
            "INTERFACE": "1/1/0",
        },
        {"bInterfaceNumber": f"{ifnum:02x}", "bInterfaceClass": "01"},
    ) + paragraph(card_path, {"SUBSYSTEM": "sound"}, {"id": card_id, "number": str(number)})


def mass_storage_text(if_path: str) -> str:
    """The one mass-storage interface of a stick in "CD-ROM mode"."""
    return paragraph(
        if_path,
        {
            "SUBSYSTEM": "usb",
            "DEVTYPE": "usb_interface",
            "DRIVER": "usb-storage",
            "INTERFACE": "8/6/80",
        },
        {
            "bInterfaceNumber": "00",
            "bInterfaceClass": "08",
            "bInterfaceSubClass": "06",
            "bInterfaceProtocol": "50",
        },
    )
