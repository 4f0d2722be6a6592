# kiln: sourced by mkinitramfs (as a conf-hooks.d file) while kiln's `initramfs` stage
# runs, and removed before the tree is committed; never part of an image.
#
# initramfs-tools 0.142 (Debian 12) copies each kernel module with copy_file and asks
# modinfo for its firmware: about seven processes per module, some 17,000 for the 2,500
# modules of MODULES=most. This manual_add_modules does the same work in batches (a
# handful of processes per call), as initramfs-tools 0.148 does with dracut-install. The
# result is the same initramfs, byte for byte (kiln's tests compare both).
#
# Only defined on a merged-/usr tree, where copy_file's canonical name of a module is its
# path with /usr in front; elsewhere hook-functions' own function stays.

if [ "$(readlink -f /lib)" = /usr/lib ]; then
manual_add_modules()
{
	local list want real prefix kmod options target firmware

	[ $# -eq 0 ] && return

	list="$(mktemp)" || return
	want="$(mktemp)" || return
	real="$(mktemp)" || return

	# The two modprobe runs of hook-functions (with and without install commands).
	{ /sbin/modprobe --all --set-version="${version?}" --ignore-install --quiet --show-depends "$@";
	  /sbin/modprobe --all --set-version="${version}" --quiet --show-depends "$@"; } |
	while read -r prefix kmod options; do
		[ "${prefix}" = insmod ] || continue
		# copy_file refuses anything but a regular file
		[ -f "${kmod}" ] || continue
		# copy_file's name for it in the initramfs
		case "${kmod}" in
		/bin/* | /lib* | /sbin/*) target="/usr${kmod}" ;;
		*) target="${kmod}" ;;
		esac
		# Already in the initramfs: copy_file returns 1, and no firmware is added.
		[ -e "${DESTDIR}${target}" ] || printf '%s\n' "${target}"
	done | sort -u > "${list}"

	# A module whose path holds another symlink becomes a link in copy_file: leave such
	# modules (none in Debian's kernels) to it, and batch the rest.
	tr '\n' '\0' < "${list}" | xargs -0r readlink -f -- > "${real}"
	if [ "$(wc -l < "${real}")" -ne "$(wc -l < "${list}")" ]; then
		echo "E: kiln: cannot resolve the paths of the kernel modules" >&2
		rm -f "${list}" "${want}" "${real}"
		return 1
	fi
	paste "${list}" "${real}" | while read -r target kmod; do
		if [ "${target}" = "${kmod}" ]; then
			printf '%s\n' "${target}" >> "${want}"
		elif copy_file module "${target}"; then
			printf '%s\n' "${target}" >> "${list}.linked"
		fi
	done

	if [ -s "${want}" ]; then
		# Their directories as copy_file makes them (mkdir -p), then the files (cp -pP).
		sed 's,/[^/]*$,,' "${want}" | sort -u | sed "s|^|${DESTDIR}|" | tr '\n' '\0' |
			xargs -0r mkdir -p --
		tr '\n' '\0' < "${want}" | xargs -0r cp -pP --parents -t "${DESTDIR}" --
	fi
	[ -f "${list}.linked" ] && cat "${list}.linked" >> "${want}"

	# The firmware of every module copied by this call, as hook-functions adds it.
	for firmware in $(tr '\n' '\0' < "${want}" | xargs -0r modinfo -k "${version}" -F firmware --); do
		add_firmware "${firmware}" || true
	done

	rm -f "${list}" "${want}" "${real}" "${list}.linked"
}
fi
