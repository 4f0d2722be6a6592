//! `ova.archive`: a vSphere OVA from the raw disk of input `tree` (option `source`).
//!
//! Options: `{"source": "disk.raw", "filename": "image.ova", "name": "web", "cpus": 2,
//! "memory_mib": 2048, "firmware": "efi", "cid": "1a2b3c4d"}`.
//!
//! The disk is converted to a streamOptimized VMDK with the build root's `qemu-img`; the
//! OVF 1.0 descriptor describes one virtual machine (CPUs, memory, an LSI Logic SCSI
//! controller holding the disk with its capacity and populated size, a VMXNET3 network
//! adapter, and `firmware = efi`); the manifest lists the SHA256 of both files. The OVA is
//! a ustar archive of `NAME.ovf`, `NAME.mf` and `NAME-disk1.vmdk` in that order (the OVF
//! specification wants the descriptor first and the manifest right after it).
//!
//! Reproducible: `qemu-img` writes a random content id (`CID=`) into the VMDK descriptor;
//! it is replaced by the manifest's `cid` (same length, so nothing else moves). The tar
//! entries have fixed owner, mode and mtime (`SOURCE_DATE_EPOCH`).

use super::StageContext;
use super::oci_archive::{append_bytes, file_sha256, header, plain_name};
use kiln_sandbox::TREE_PATH;
use std::fs::{self, File};
use std::io::BufWriter;

const INPUT: &str = "/run/kiln/input";
const WORK: &str = ".kiln-ova-work";

pub fn run(ctx: &mut StageContext<'_>) -> Result<(), String> {
    let source = plain_name(ctx.option_str("source")?)?.to_owned();
    let filename = plain_name(ctx.option_str("filename")?)?.to_owned();
    let name = plain_name(ctx.option_str("name")?)?.to_owned();
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(format!(
            "name {name:?}: only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    let cid = ctx.option_str("cid")?.to_owned();
    if cid.len() != 8 || !cid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("cid {cid:?} must be eight hex digits"));
    }
    let num = |key: &str| {
        ctx.options
            .get(key)
            .and_then(|v| v.as_u64())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("option {key:?} (a positive number) is required"))
    };
    let cpus = num("cpus")?;
    let memory = num("memory_mib")?;
    let firmware = ctx.option_str("firmware")?.to_owned();
    if !matches!(firmware.as_str(), "efi" | "bios") {
        return Err(format!("firmware {firmware:?}: efi or bios"));
    }
    let input = ctx.input_tree("tree")?.to_path_buf();
    let raw = File::open(input.join(&source))
        .map_err(|e| format!("input has no readable file {source:?}: {e}"))?;
    let capacity = raw.metadata().map_err(|e| e.to_string())?.len();
    let populated: u64 = crate::sparse::data_extents(&raw)
        .map_err(|e| format!("cannot read the extents of {source}: {e}"))?
        .iter()
        .map(|(_, len)| len)
        .sum();

    let work = ctx.tree.join(WORK);
    fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let vmdk = format!("{name}-disk1.vmdk");
    let sb = ctx.build_sandbox()?.bind_ro(&input, INPUT);
    let src = format!("{INPUT}/{source}");
    let dst = format!("{TREE_PATH}/{WORK}/{vmdk}");
    (ctx.log)(&format!(
        "qemu-img convert -O vmdk (streamOptimized) → {vmdk}"
    ));
    ctx.run_logged(
        &sb,
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized,adapter_type=lsilogic",
            &src,
            &dst,
        ],
    )?;
    let vmdk_path = work.join(&vmdk);
    super::image_convert::set_vmdk_cid(&vmdk_path, &cid)?;
    let vmdk_size = fs::metadata(&vmdk_path).map_err(|e| e.to_string())?.len();
    let vmdk_sha = file_sha256(&vmdk_path).map_err(|e| e.to_string())?;

    let ovf = descriptor(&Vm {
        name: &name,
        vmdk: &vmdk,
        vmdk_size,
        capacity,
        populated,
        cpus,
        memory_mib: memory,
        efi: firmware == "efi",
    });
    let ovf_name = format!("{name}.ovf");
    let mf = format!(
        "SHA256({ovf_name})= {}\nSHA256({vmdk})= {vmdk_sha}\n",
        super::oci_archive::hex_sha256(ovf.as_bytes())
    );

    let epoch = ctx.source_epoch.unwrap_or(0);
    let out = ctx.tree.join(&filename);
    let file = File::create(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    let res: std::io::Result<()> = (|| {
        append_bytes(&mut b, &ovf_name, ovf.as_bytes(), epoch)?;
        append_bytes(&mut b, &format!("{name}.mf"), mf.as_bytes(), epoch)?;
        let mut h = header(tar::EntryType::Regular, 0o644, epoch);
        h.set_size(vmdk_size);
        b.append_data(&mut h, &vmdk, File::open(&vmdk_path)?)?;
        b.finish()
    })();
    res.map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let file = b
        .into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    fs::remove_dir_all(&work).map_err(|e| format!("cannot remove {}: {e}", work.display()))?;
    (ctx.log)(&format!(
        "wrote {filename}: {ovf_name}, {name}.mf, {vmdk} ({vmdk_size} bytes; disk {capacity} bytes, {populated} populated)"
    ));
    Ok(())
}

/// What the OVF descriptor says.
pub struct Vm<'a> {
    pub name: &'a str,
    pub vmdk: &'a str,
    pub vmdk_size: u64,
    pub capacity: u64,
    pub populated: u64,
    pub cpus: u64,
    pub memory_mib: u64,
    pub efi: bool,
}

/// The OVF 1.0 descriptor (as vSphere exports it; `rasd` elements in schema order).
/// Names are checked by the caller to need no XML escaping.
pub fn descriptor(vm: &Vm<'_>) -> String {
    let Vm {
        name,
        vmdk,
        vmdk_size,
        capacity,
        populated,
        cpus,
        memory_mib,
        efi,
    } = vm;
    let firmware = if *efi { "efi" } else { "bios" };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{vmdk}" ovf:id="file1" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="{populated}"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian10_64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>{cpus} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{memory_mib}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{memory_mib}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on "VM Network"</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="{firmware}"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}
