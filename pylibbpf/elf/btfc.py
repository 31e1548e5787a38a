"""Print BTF types as C, following libbpf 1.1's ``btf_dump`` (what bpftool prints).

Declarators are built the way ``btf_dump_emit_type_decl`` does: the chain of modifiers from the
declared name down to its base type is pushed on a stack, then emitted base first. Anonymous
structs, unions and enums are printed inline; named ones by name. Struct layouts that natural
alignment does not explain get explicit padding bitfields and ``__attribute__((packed))``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .btftypes import MAX_DEPTH, PTR_SIZE, BtfKind, BtfType
from .errors import ElfError

if TYPE_CHECKING:
    from .btf import Btf

__all__ = ["CPrinter", "dump_c"]

_CHAIN_KINDS = {BtfKind.PTR, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT,
                BtfKind.FUNC_PROTO, BtfKind.TYPE_TAG, BtfKind.ARRAY}
_BASE_KINDS = {BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD, BtfKind.STRUCT,
               BtfKind.UNION, BtfKind.TYPEDEF, BtfKind.FLOAT}
_MAX_NEST = 64
_MAX_STEPS = 200_000  # declarations per rendering: bounds DAG-shaped or hostile BTF
_MAX_PAD_LINES = 1 << 16  # padding markers per gap: a hostile struct size must not eat memory


def _pfx(lvl: int) -> str:
    return "\t" * lvl


class CPrinter:
    """Renders types of one :class:`Btf` as C text."""

    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.out: list[str] = []
        self._nest = 0
        self._steps = 0

    def _emit(self, text: str) -> None:
        self.out.append(text)

    def _take(self) -> str:
        text = "".join(self.out)
        self.out = []
        return text

    # -- public ---------------------------------------------------------------------------

    def decl(self, type_id: int, name: str, lvl: int = 0) -> str:
        """``type name`` as a C declaration (name may be empty)."""
        saved = self.out
        self.out = []
        self._emit_type_decl(type_id, name, lvl)
        text = self._take()
        self.out = saved
        return text

    def definition(self, type_id: int) -> str:
        """The top-level definition of a type, as bpftool prints it (without the ``;``)."""
        t = self.btf.type_by_id(type_id)
        self.out = []
        if t.kind in (BtfKind.STRUCT, BtfKind.UNION):
            self._emit_struct_def(t, 0)
        elif t.kind in (BtfKind.ENUM, BtfKind.ENUM64):
            self._emit_enum_def(t, 0)
        elif t.kind == BtfKind.FWD:
            self._emit(f"{'union' if t.kind_flag else 'struct'} {t.name}")
        elif t.kind == BtfKind.TYPEDEF:
            self._emit("typedef ")
            self._emit_type_decl(t.type_id or 0, t.name, 0)
        elif t.kind == BtfKind.FUNC:
            self._emit_type_decl(t.type_id or 0, t.name, 0)
        elif t.kind == BtfKind.VAR:
            self._emit_type_decl(t.type_id or 0, t.name, 0)
        else:
            self._emit_type_decl(t.id, "", 0)
        return self._take()

    # -- declarations ---------------------------------------------------------------------

    def _emit_type_decl(self, type_id: int, fname: str, lvl: int) -> None:
        self._steps += 1
        if self._steps > _MAX_STEPS:
            raise ElfError(f"BTF type [{type_id}]: declaration too large to print")
        stack: list[int] = []
        cur = type_id
        for _ in range(MAX_DEPTH * 4):
            stack.append(cur)
            if cur == 0:
                break
            t = self.btf.type_by_id(cur)
            if t.kind in _BASE_KINDS:
                break
            if t.kind == BtfKind.ARRAY:
                cur = t.elem_type_id
            elif t.kind in _CHAIN_KINDS:
                cur = t.type_id or 0
            else:
                raise ElfError(f"BTF type [{t.id}] of kind {t.kind.name} in a declaration")
        else:
            raise ElfError(f"BTF type [{type_id}]: declaration chain too deep or cyclic")
        self._emit_chain(stack, fname, lvl)

    def _emit_mods(self, stack: list[int]) -> None:
        while stack:
            t = self.btf.type_by_id(stack[-1]) if stack[-1] else None
            if t is None:
                return
            if t.kind == BtfKind.VOLATILE:
                self._emit("volatile ")
            elif t.kind == BtfKind.CONST:
                self._emit("const ")
            elif t.kind == BtfKind.RESTRICT:
                self._emit("restrict ")
            else:
                return
            stack.pop()

    def _drop_mods(self, stack: list[int]) -> None:
        while stack and stack[-1]:
            kind = self.btf.type_by_id(stack[-1]).kind
            if kind not in (BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT,
                            BtfKind.TYPE_TAG):
                return
            stack.pop()

    def _emit_name(self, name: str, last_was_ptr: bool) -> None:
        self._emit((" " if name and not last_was_ptr else "") + name)

    def _emit_chain(self, stack: list[int], fname: str, lvl: int) -> None:
        # ``stack`` holds the declaration chain, outermost first; it is consumed from the end.
        last_was_ptr = True
        while stack:
            type_id = stack.pop()
            if type_id == 0:
                self._emit_mods(stack)
                self._emit("void")
                last_was_ptr = False
                continue
            t = self.btf.type_by_id(type_id)
            kind = t.kind
            if kind in (BtfKind.INT, BtfKind.FLOAT):
                self._emit_mods(stack)
                self._emit(t.name)
            elif kind in (BtfKind.STRUCT, BtfKind.UNION):
                self._emit_mods(stack)
                if not t.name:
                    self._emit_struct_def(t, lvl)
                else:
                    self._emit(f"{'struct' if kind == BtfKind.STRUCT else 'union'} {t.name}")
            elif kind in (BtfKind.ENUM, BtfKind.ENUM64):
                self._emit_mods(stack)
                if not t.name:
                    self._emit_enum_def(t, lvl)
                else:
                    self._emit(f"enum {t.name}")
            elif kind == BtfKind.FWD:
                self._emit_mods(stack)
                self._emit(f"{'union' if t.kind_flag else 'struct'} {t.name}")
            elif kind == BtfKind.TYPEDEF:
                self._emit_mods(stack)
                self._emit(t.name)
            elif kind == BtfKind.PTR:
                self._emit("*" if last_was_ptr else " *")
            elif kind == BtfKind.VOLATILE:
                self._emit(" volatile")
            elif kind == BtfKind.CONST:
                self._emit(" const")
            elif kind == BtfKind.RESTRICT:
                self._emit(" restrict")
            elif kind == BtfKind.TYPE_TAG:
                self._emit_mods(stack)
                self._emit(f' __attribute__((btf_type_tag("{t.name}")))')
            elif kind == BtfKind.ARRAY:
                self._drop_mods(stack)
                if not stack:
                    self._emit_name(fname, last_was_ptr)
                    self._emit(f"[{t.nelems}]")
                    return
                nxt = stack[-1]
                multidim = nxt != 0 and self.btf.type_by_id(nxt).kind == BtfKind.ARRAY
                if fname and not last_was_ptr:
                    self._emit(" ")
                if not multidim:
                    self._emit("(")
                self._emit_chain(stack, fname, lvl)
                if not multidim:
                    self._emit(")")
                self._emit(f"[{t.nelems}]")
                return
            elif kind == BtfKind.FUNC_PROTO:
                self._drop_mods(stack)
                if stack:
                    self._emit(" (")
                    self._emit_chain(stack, fname, lvl)
                    self._emit(")")
                else:
                    self._emit_name(fname, last_was_ptr)
                self._emit("(")
                params = t.params
                if not params or (len(params) == 1 and params[0].type_id == 0):
                    self._emit("void)")
                    return
                for i, p in enumerate(params):
                    if i:
                        self._emit(", ")
                    if i == len(params) - 1 and p.type_id == 0:
                        self._emit("...")
                        break
                    self._emit_type_decl(p.type_id, p.name, lvl)
                self._emit(")")
                return
            else:
                raise ElfError(f"BTF type [{t.id}] of kind {kind.name} in a declaration")
            last_was_ptr = kind == BtfKind.PTR
        self._emit_name(fname, last_was_ptr)

    # -- definitions ----------------------------------------------------------------------

    def _is_packed(self, t: BtfType) -> bool:
        max_align = 1
        for m in t.members:
            m_align = self.btf.align_of(m.type_id)
            if m_align and m.bitfield_size == 0 and m.bit_offset % (8 * m_align):
                return True
            max_align = max(max_align, m_align)
        return bool((t.size or 0) % max_align)

    def _emit_bit_padding(self, cur_off: int, next_off: int, next_align: int,
                          in_bitfield: bool, lvl: int) -> None:
        # Use the widest of long/int/short/char that reaches a natural boundary not past the
        # next member, then fill the rest with full-width markers (libbpf 1.1's rules).
        if cur_off >= next_off:
            return
        pads = (("long", PTR_SIZE * 8), ("int", 32), ("short", 16), ("char", 8))
        pad_type, pad_bits = pads[-1]
        new_off = cur_off
        for pad_type, pad_bits in pads:  # noqa: B007 - the chosen pad is used below
            new_off = -(-cur_off // pad_bits) * pad_bits
            if new_off <= next_off:
                break
        if cur_off < new_off <= next_off:
            if in_bitfield or (
                    new_off == next_off
                    and -(-cur_off // (next_align * 8)) * next_align * 8 != new_off) or (
                    new_off != next_off and next_off - new_off <= new_off - cur_off):
                self._emit(f"\n{_pfx(lvl)}{pad_type}: "
                           f"{new_off - cur_off if in_bitfield else 0};")
            cur_off = new_off
        if (next_off - cur_off) // pad_bits > _MAX_PAD_LINES:
            raise ElfError(f"struct padding of {next_off - cur_off} bits (at bit {cur_off}) is "
                           "too large to print")
        while cur_off != next_off:
            bits = min(next_off - cur_off, pad_bits)
            if bits == pad_bits:
                self._emit(f"\n{_pfx(lvl)}{pad_type}: {pad_bits};")
                cur_off += bits
                continue
            for small_type, small_bits in reversed(pads):
                if small_bits >= bits:
                    self._emit(f"\n{_pfx(lvl)}{small_type}: {bits};")
                    break
            break

    def _emit_struct_def(self, t: BtfType, lvl: int) -> None:
        self._nest += 1
        if self._nest > _MAX_NEST:
            raise ElfError(f"BTF type [{t.id}]: anonymous types nested too deep or cyclic")
        is_struct = t.kind == BtfKind.STRUCT
        align = self.btf.align_of(t)
        packed = self._is_packed(t) if is_struct else False
        self._emit(f"{'struct' if is_struct else 'union'}{' ' if t.name else ''}{t.name} {{")
        off = 0
        prev_bitfield = False
        for m in t.members:
            m_align = 1 if packed else self.btf.align_of(m.type_id)
            in_bitfield = prev_bitfield and m.bitfield_size != 0
            self._emit_bit_padding(off, m.bit_offset, m_align, in_bitfield, lvl + 1)
            self._emit(f"\n{_pfx(lvl + 1)}")
            self._emit_type_decl(m.type_id, m.name, lvl + 1)
            if m.bitfield_size:
                self._emit(f": {m.bitfield_size}")
                off = m.bit_offset + m.bitfield_size
                prev_bitfield = True
            else:
                off = m.bit_offset + max(0, self.btf.size_of(m.type_id)) * 8
                prev_bitfield = False
            self._emit(";")
        if is_struct:
            self._emit_bit_padding(off, (t.size or 0) * 8, align, False, lvl + 1)
        if t.members or t.size:
            self._emit(f"\n{_pfx(lvl)}}}")
        else:
            self._emit("}")
        if packed:
            self._emit(" __attribute__((packed))")
        self._nest -= 1

    def _emit_enum_def(self, t: BtfType, lvl: int) -> None:
        self._emit(f"enum{' ' if t.name else ''}{t.name}")
        if not t.enum_values:
            return
        self._emit(" {")
        for v in t.enum_values:
            if t.kind == BtfKind.ENUM:
                val = str(v.value if t.kind_flag else v.value & 0xFFFFFFFF)
            elif t.kind_flag:
                val = f"{v.value}LL"
            else:
                val = f"{v.value & 0xFFFFFFFFFFFFFFFF}ULL"
            self._emit(f"\n{_pfx(lvl + 1)}{v.name} = {val},")
        self._emit(f"\n{_pfx(lvl)}}}")


# ------------------------------------------------------------------------ a whole BTF as C

_MODIFIER_KINDS = {BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT, BtfKind.TYPE_TAG}
_COMPOSITES = {BtfKind.STRUCT, BtfKind.UNION}
_ENUMS = {BtfKind.ENUM, BtfKind.ENUM64}


class _Declarations:
    """Every named type of a BTF as C declarations in an order a compiler accepts: a type is
    defined after the types it holds by value, and a struct or union that is only pointed to
    before its definition gets a forward declaration (``struct x;``) first.  Anonymous structs,
    unions and enums are printed inline where they are used; an anonymous enum nothing uses
    is printed on its own (it defines constants)."""

    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.printer = CPrinter(btf)
        self.out: list[str] = []
        self.defined: set[int] = set()
        self.declared: set[int] = set()   # forward-declared structs and unions
        self.busy: set[int] = set()

    def all_types(self) -> str:
        referenced = self._referenced()
        for t in self.btf.types[1:]:
            if t.kind == BtfKind.TYPEDEF and t.name == "__builtin_va_list":
                continue  # the compiler's own
            if t.kind in _COMPOSITES and t.name or t.kind == BtfKind.TYPEDEF:
                self._define(t.id)
            elif t.kind in _ENUMS and (t.name or t.id not in referenced):
                self._define(t.id)
            elif t.kind == BtfKind.FWD:
                self._forward(t.id)
        return "".join(self.out)

    def _referenced(self) -> set[int]:
        refs: set[int] = set()
        for t in self.btf.types[1:]:
            if t.kind == BtfKind.ARRAY:
                refs.add(t.elem_type_id)
            elif t.kind in _COMPOSITES:
                refs.update(m.type_id for m in t.members)
            elif t.kind == BtfKind.FUNC_PROTO:
                refs.update(p.type_id for p in t.params)
                refs.add(t.type_id or 0)
            elif t.type_id is not None and t.kind not in (BtfKind.FUNC, BtfKind.DATASEC):
                refs.add(t.type_id)
        return refs

    def _emit(self, text: str) -> None:
        self.out.append(text + ";\n\n")

    def _forward(self, type_id: int) -> None:
        if type_id in self.defined or type_id in self.declared:
            return
        t = self.btf.type_by_id(type_id)
        self.declared.add(type_id)
        if t.kind == BtfKind.FWD:
            self._emit(f"{'union' if t.kind_flag else 'struct'} {t.name}")
        else:
            self._emit(f"{'struct' if t.kind == BtfKind.STRUCT else 'union'} {t.name}")

    def _define(self, type_id: int) -> None:
        if type_id in self.defined or type_id in self.busy:
            return
        t = self.btf.type_by_id(type_id)
        self.busy.add(type_id)
        if t.kind in _COMPOSITES:
            for m in t.members:
                self._need(m.type_id, False, 0)
        elif t.kind == BtfKind.TYPEDEF:
            target = self._skip_modifiers(t.type_id or 0)
            named = target.kind in _COMPOSITES and target.name or target.kind == BtfKind.FWD
            # `typedef struct x x_t;` needs only `struct x;` before it
            self._need(t.type_id or 0, bool(named), 0)
        self.busy.discard(type_id)
        self.defined.add(type_id)
        self._emit(self.printer.definition(type_id))

    def _skip_modifiers(self, type_id: int) -> BtfType:
        t = self.btf.type_by_id(type_id)
        for _ in range(MAX_DEPTH):
            if t.kind not in _MODIFIER_KINDS:
                return t
            t = self.btf.type_by_id(t.type_id or 0)
        raise ElfError(f"BTF type [{type_id}]: modifier chain too deep or cyclic")

    def _need(self, type_id: int, via_pointer: bool, depth: int) -> None:
        """Make ``type_id`` usable here: complete, or (behind a pointer) at least declared."""
        if depth > MAX_DEPTH * 4:
            raise ElfError(f"BTF type [{type_id}]: declaration chain too deep or cyclic")
        if type_id == 0:
            return
        t = self.btf.type_by_id(type_id)
        kind = t.kind
        if kind == BtfKind.PTR:
            self._need(t.type_id or 0, True, depth + 1)
        elif kind in _MODIFIER_KINDS:
            self._need(t.type_id or 0, via_pointer, depth + 1)
        elif kind == BtfKind.ARRAY:
            self._need(t.elem_type_id, via_pointer, depth + 1)
        elif kind == BtfKind.FUNC_PROTO:
            # parameters and the result of a prototype may be incomplete types
            self._need(t.type_id or 0, True, depth + 1)
            for p in t.params:
                self._need(p.type_id, True, depth + 1)
        elif kind == BtfKind.TYPEDEF:
            self._define(type_id)
            if not via_pointer:  # a value of it: what it names must be complete too
                self._need(t.type_id or 0, False, depth + 1)
        elif kind in _COMPOSITES:
            if not t.name:  # printed inline: what it holds must be complete
                for m in t.members:
                    self._need(m.type_id, False, depth + 1)
            elif via_pointer:
                # a struct pointing to itself needs no forward declaration
                if type_id not in self.defined and type_id not in self.busy:
                    self._forward(type_id)
            else:
                self._define(type_id)
        elif kind in _ENUMS and t.name:
            self._define(type_id)
        elif kind == BtfKind.FWD:
            self._forward(type_id)


def dump_c(btf: Btf) -> str:
    """Every struct, union, enum and typedef of ``btf`` as C declarations, in an order a C
    compiler accepts (what ``bpftool btf dump ... format c`` prints between its header and
    footer).  Functions, variables and sections are left out, as bpftool leaves them."""
    return _Declarations(btf).all_types()
